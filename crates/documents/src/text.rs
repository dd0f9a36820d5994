//! Shaped text on a PDF surface: the embedded fonts, script runs and placing shaped glyphs.
//!
//! A line is split into runs by script: Devanagari (U+0900–U+097F, U+A8E0–U+A8FF, and the
//! joiners U+200C/U+200D) goes to Noto Sans Devanagari, everything else to Noto Sans (the
//! Devanagari face has no Latin letters). A space stays in the run it follows. Each run is shaped
//! by rustybuzz (HarfBuzz's shaping in Rust: conjuncts, reordered vowel signs, reph), and its
//! glyph ids and positions are placed with krilla's glyph-level API together with the text each
//! glyph cluster stands for, so the PDF's text layer (copy, search, `pdftotext`) reads the
//! original characters.

use krilla::geom::Point;
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use std::sync::OnceLock;

/// Noto Sans Devanagari Regular (SIL OFL 1.1, see `fonts/OFL.txt`).
static DEVANAGARI_TTF: &[u8] = include_bytes!("../fonts/NotoSansDevanagari-Regular.ttf");
/// Noto Sans Regular (SIL OFL 1.1, see `fonts/OFL.txt`).
static LATIN_TTF: &[u8] = include_bytes!("../fonts/NotoSans-Regular.ttf");

/// One embedded face: krilla's handle (for writing) and its bytes (for shaping).
pub(crate) struct Face {
    font: Font,
    data: &'static [u8],
}

/// The two embedded faces, parsed once.
pub(crate) struct Fonts {
    devanagari: Face,
    latin: Face,
}

static FONTS: OnceLock<Option<Fonts>> = OnceLock::new();

/// The embedded fonts (`None` only if a committed font file were corrupt).
pub(crate) fn fonts() -> Option<&'static Fonts> {
    FONTS
        .get_or_init(|| {
            Some(Fonts {
                devanagari: Face {
                    font: Font::new(DEVANAGARI_TTF.into(), 0)?,
                    data: DEVANAGARI_TTF,
                },
                latin: Face {
                    font: Font::new(LATIN_TTF.into(), 0)?,
                    data: LATIN_TTF,
                },
            })
        })
        .as_ref()
}

/// Whether a character belongs to the Devanagari face.
pub(crate) fn is_devanagari(c: char) -> bool {
    matches!(c, '\u{0900}'..='\u{097F}' | '\u{A8E0}'..='\u{A8FF}' | '\u{200C}' | '\u{200D}')
}

/// Splits `text` into (is Devanagari, run) pieces; spaces stay with the run before them.
pub(crate) fn script_runs(text: &str) -> Vec<(bool, &str)> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut current: Option<bool> = None;
    for (i, c) in text.char_indices() {
        if c == ' ' {
            continue;
        }
        let d = is_devanagari(c);
        match current {
            Some(cur) if cur != d => {
                runs.push((cur, &text[start..i]));
                start = i;
                current = Some(d);
            }
            None => current = Some(d),
            _ => {}
        }
    }
    if start < text.len() {
        runs.push((current.unwrap_or(false), &text[start..]));
    }
    runs
}

/// Shapes one single-script run; glyph text ranges are byte ranges of `run`.
fn shape(face: &Face, run: &str) -> Vec<KrillaGlyph> {
    let Some(rb) = rustybuzz::Face::from_slice(face.data, 0) else {
        return Vec::new();
    };
    let mut buffer = rustybuzz::UnicodeBuffer::new();
    buffer.push_str(run);
    buffer.guess_segment_properties();
    buffer.set_direction(rustybuzz::Direction::LeftToRight);
    let output = rustybuzz::shape(&rb, &[], buffer);
    let upem = face.font.units_per_em();
    let infos = output.glyph_infos();
    let positions = output.glyph_positions();
    let mut glyphs = Vec::with_capacity(infos.len());
    for (i, (info, pos)) in infos.iter().zip(positions).enumerate() {
        let start = info.cluster as usize;
        // The cluster ends where the next different cluster starts (left to right).
        let end = infos[i..]
            .iter()
            .find(|next| next.cluster != info.cluster)
            .map_or(run.len(), |next| next.cluster as usize);
        glyphs.push(KrillaGlyph::new(
            GlyphId::new(info.glyph_id),
            pos.x_advance as f32 / upem,
            pos.x_offset as f32 / upem,
            pos.y_offset as f32 / upem,
            pos.y_advance as f32 / upem,
            start..end.max(start),
            None,
        ));
    }
    glyphs
}

/// Draws one line of text with its baseline at `(x, y)`; returns its width.
pub(crate) fn draw_line(surface: &mut Surface<'_>, x: f32, y: f32, size: f32, text: &str) -> f32 {
    let Some(fonts) = fonts() else {
        return 0.0;
    };
    let mut cursor = x;
    for (devanagari, run) in script_runs(text) {
        let face = if devanagari {
            &fonts.devanagari
        } else {
            &fonts.latin
        };
        let glyphs = shape(face, run);
        let width: f32 = glyphs.iter().map(|g| g.x_advance * size).sum();
        surface.draw_glyphs(
            Point::from_xy(cursor, y),
            &glyphs,
            face.font.clone(),
            run,
            size,
            false,
        );
        cursor += width;
    }
    cursor - x
}

/// The width `text` would take at `size`.
pub(crate) fn line_width(size: f32, text: &str) -> f32 {
    let Some(fonts) = fonts() else {
        return 0.0;
    };
    script_runs(text)
        .into_iter()
        .map(|(devanagari, run)| {
            let face = if devanagari {
                &fonts.devanagari
            } else {
                &fonts.latin
            };
            shape(face, run)
                .iter()
                .map(|g| g.x_advance * size)
                .sum::<f32>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_by_script_and_keep_spaces() {
        assert_eq!(
            script_runs("टोकन संख्या: 12 QR कोड"),
            vec![(true, "टोकन संख्या"), (false, ": 12 QR "), (true, "कोड"),]
        );
        assert_eq!(script_runs("Asha"), vec![(false, "Asha")]);
        assert!(script_runs("").is_empty());
    }

    #[test]
    fn devanagari_is_shaped_into_conjuncts_not_one_glyph_per_char() {
        let fonts = fonts().expect("embedded fonts parse");
        // क्ष is three characters (क ् ष) and one conjunct glyph; ि is reordered before क in कि.
        let conjunct = shape(&fonts.devanagari, "क्ष");
        assert_eq!(conjunct.len(), 1, "क्ष should shape to one conjunct glyph");
        let ki = shape(&fonts.devanagari, "कि");
        assert_eq!(ki.len(), 2);
        let ka = shape(&fonts.devanagari, "क");
        // The vowel sign ि is drawn first (to the left), so the first glyph is not क's.
        assert_ne!(ki[0].glyph_id, ka[0].glyph_id);
        assert!(ki.iter().all(|g| g.glyph_id.to_u32() != 0), "no .notdef");
        let latin = shape(&fonts.latin, "COVISHIELD 12");
        assert!(latin.iter().all(|g| g.glyph_id.to_u32() != 0));
    }
}
