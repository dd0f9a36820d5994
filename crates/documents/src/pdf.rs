//! The two documents: the appointment slip and the vaccination certificate (A4, one page).
//!
//! Both carry their facts twice: drawn on the page (shaped text, see [`crate::text`]) and in the
//! PDF's document information (`Title`, `Subject`, `Keywords`), so a program can read them back
//! without text extraction. The certificate's `Keywords` hold its signed payload (the same text
//! as its QR code) as an entry beginning `KC1.`; [`certificate_payload`] reads it back.

use crate::sign::{CertificateRecord, CertificateSigner};
use crate::text::{draw_line, line_width};
use crate::Lang;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Rect};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::surface::Surface;
use krilla::Document;
use qrcode::{EcLevel, QrCode};

/// A4 width in points.
const PAGE_WIDTH_PT: f32 = 595.0;
/// A4 height in points.
const PAGE_HEIGHT_PT: f32 = 842.0;
/// Left margin.
const MARGIN_PT: f32 = 56.0;
/// Where values start, right of their labels.
const VALUE_X_PT: f32 = 230.0;
/// Side of the certificate's QR code.
const QR_SIDE_PT: f32 = 170.0;
/// Light modules around a QR code (the quiet zone the standard asks for).
const QR_QUIET_MODULES: usize = 4;

/// Why a document could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The embedded fonts did not load (a corrupt build).
    #[error("the embedded fonts cannot be read")]
    Fonts,
    /// The signed payload does not fit in a QR code.
    #[error("the certificate payload is too long for a QR code")]
    PayloadTooLong,
    /// The PDF writer refused the document.
    #[error("the PDF could not be written")]
    Pdf,
}

/// One person on a slip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlipPerson {
    /// Name as registered.
    pub name: String,
    /// Masked photo ID.
    pub id_masked: String,
    /// Their token number in the session.
    pub token_number: u32,
    /// Their booking's reference (the v1 booking id, or a v2 appointment id).
    pub booking_ref: String,
}

/// What an appointment slip states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlipData {
    /// The slip's reference (booking id, or a v2 confirmation number).
    pub reference: String,
    /// Centre name.
    pub centre_name: String,
    /// Centre address (with pincode).
    pub centre_address: String,
    /// Session day, `YYYY-MM-DD` (or as the caller wants it shown).
    pub date: String,
    /// Time slot, e.g. `09:00-11:00`.
    pub slot: String,
    /// Vaccine name.
    pub vaccine: String,
    /// Dose number.
    pub dose: u8,
    /// One or more people booked together.
    pub people: Vec<SlipPerson>,
}

/// The words on the documents, in both languages.
struct Words {
    slip_title: &'static str,
    certificate_title: &'static str,
    reference: &'static str,
    token: &'static str,
    centre: &'static str,
    address: &'static str,
    date: &'static str,
    slot: &'static str,
    vaccine: &'static str,
    dose: &'static str,
    name: &'static str,
    photo_id: &'static str,
    booking: &'static str,
    birth_year: &'static str,
    batch: &'static str,
    fully: &'static str,
    partially: &'static str,
    bring: &'static str,
    scan: &'static str,
    key_id: &'static str,
}

const EN: Words = Words {
    slip_title: "Appointment slip",
    certificate_title: "Certificate of vaccination",
    reference: "Reference",
    token: "Token number",
    centre: "Centre",
    address: "Address",
    date: "Date",
    slot: "Time slot",
    vaccine: "Vaccine",
    dose: "Dose",
    name: "Name",
    photo_id: "Photo ID",
    booking: "Booking",
    birth_year: "Year of birth",
    batch: "Batch",
    fully: "Fully vaccinated",
    partially: "Partially vaccinated",
    bring: "Bring this slip and the same photo ID to the centre.",
    scan: "Scan the QR code to check that this certificate is genuine.",
    key_id: "Signing key",
};

const HI: Words = Words {
    slip_title: "अपॉइंटमेंट पर्ची",
    certificate_title: "टीकाकरण प्रमाणपत्र",
    reference: "संदर्भ संख्या",
    token: "टोकन संख्या",
    centre: "टीकाकरण केंद्र",
    address: "पता",
    date: "तारीख",
    slot: "समय",
    vaccine: "टीका",
    dose: "खुराक",
    name: "नाम",
    photo_id: "फ़ोटो पहचान पत्र",
    booking: "बुकिंग",
    birth_year: "जन्म वर्ष",
    batch: "बैच",
    fully: "पूर्ण टीकाकरण",
    partially: "आंशिक टीकाकरण",
    bring: "यह पर्ची और वही फ़ोटो पहचान पत्र केंद्र पर साथ लाएँ।",
    scan: "यह प्रमाणपत्र असली है या नहीं, जाँचने के लिए QR कोड स्कैन करें।",
    key_id: "हस्ताक्षर कुंजी",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Hi => &HI,
    }
}

/// A page being written top to bottom.
struct Writer<'a, 'b> {
    surface: &'a mut Surface<'b>,
    y: f32,
}

impl Writer<'_, '_> {
    fn title(&mut self, text: &str) {
        self.y += 30.0;
        draw_line(self.surface, MARGIN_PT, self.y, 22.0, text);
        self.y += 14.0;
        self.rule();
    }

    fn rule(&mut self) {
        if let Some(rect) = Rect::from_xywh(MARGIN_PT, self.y, PAGE_WIDTH_PT - 2.0 * MARGIN_PT, 0.8)
        {
            fill_rects(self.surface, &[rect], rgb::Color::new(40, 70, 120));
        }
        self.y += 12.0;
    }

    fn field(&mut self, label: &str, value: &str) {
        self.y += 20.0;
        draw_line(self.surface, MARGIN_PT, self.y, 11.0, label);
        draw_line(self.surface, VALUE_X_PT, self.y, 12.0, value);
    }

    fn heading(&mut self, text: &str) {
        self.y += 30.0;
        draw_line(self.surface, MARGIN_PT, self.y, 15.0, text);
        self.y += 6.0;
    }

    fn note(&mut self, text: &str) {
        self.y += 26.0;
        draw_line(self.surface, MARGIN_PT, self.y, 10.0, text);
    }
}

fn fill_rects(surface: &mut Surface<'_>, rects: &[Rect], color: rgb::Color) {
    let mut pb = PathBuilder::new();
    for r in rects {
        pb.push_rect(*r);
    }
    if let Some(path) = pb.finish() {
        surface.set_fill(Some(Fill {
            paint: color.into(),
            opacity: NormalizedF32::ONE,
            rule: Default::default(),
        }));
        surface.draw_path(&path);
        surface.set_fill(Some(Fill::default()));
    }
}

fn document_with(
    metadata: Metadata,
    draw: impl FnOnce(&mut Surface<'_>),
) -> Result<Vec<u8>, DocumentError> {
    crate::text::fonts().ok_or(DocumentError::Fonts)?;
    let mut document = Document::new();
    document.set_metadata(metadata);
    let settings =
        PageSettings::from_wh(PAGE_WIDTH_PT, PAGE_HEIGHT_PT).ok_or(DocumentError::Pdf)?;
    let mut page = document.start_page_with(settings);
    let mut surface = page.surface();
    draw(&mut surface);
    surface.finish();
    page.finish();
    document.finish().map_err(|_| DocumentError::Pdf)
}

fn lang_tag(lang: Lang) -> String {
    match lang {
        Lang::En => "en".into(),
        Lang::Hi => "hi".into(),
    }
}

/// The appointment slip as a PDF.
pub fn render_slip(slip: &SlipData, lang: Lang) -> Result<Vec<u8>, DocumentError> {
    let w = words(lang);
    let mut keywords = vec![
        format!("reference:{}", slip.reference),
        format!("date:{}", slip.date),
        format!("slot:{}", slip.slot),
        format!("vaccine:{}", slip.vaccine),
        format!("dose:{}", slip.dose),
    ];
    for p in &slip.people {
        keywords.push(format!("token:{}", p.token_number));
        keywords.push(format!("id:{}", p.id_masked));
    }
    let metadata = Metadata::new()
        .title(format!("{} {}", w.slip_title, slip.reference))
        .description(format!(
            "{} | {} | {} {} | {} {}",
            slip.centre_name, slip.date, slip.slot, slip.vaccine, w.dose, slip.dose
        ))
        .keywords(keywords)
        .language(lang_tag(lang))
        .creator("Kataar".into());
    document_with(metadata, |surface| {
        let mut page = Writer {
            surface,
            y: MARGIN_PT,
        };
        page.title(w.slip_title);
        page.field(w.reference, &slip.reference);
        page.field(w.centre, &slip.centre_name);
        page.field(w.address, &slip.centre_address);
        page.field(w.date, &slip.date);
        page.field(w.slot, &slip.slot);
        page.field(w.vaccine, &slip.vaccine);
        page.field(w.dose, &slip.dose.to_string());
        for p in &slip.people {
            page.heading(&p.name);
            page.field(w.token, &p.token_number.to_string());
            page.field(w.photo_id, &p.id_masked);
            page.field(w.booking, &p.booking_ref);
        }
        page.y += 10.0;
        page.rule();
        page.note(w.bring);
    })
}

/// The modules of a QR code holding `payload` (medium error correction when it fits, else low).
fn qr(payload: &str) -> Result<QrCode, DocumentError> {
    QrCode::with_error_correction_level(payload, EcLevel::M)
        .or_else(|_| QrCode::with_error_correction_level(payload, EcLevel::L))
        .map_err(|_| DocumentError::PayloadTooLong)
}

fn draw_qr(surface: &mut Surface<'_>, code: &QrCode, x: f32, y: f32) {
    let n = code.width();
    let module = QR_SIDE_PT / (n + 2 * QR_QUIET_MODULES) as f32;
    let origin_x = x + module * QR_QUIET_MODULES as f32;
    let origin_y = y + module * QR_QUIET_MODULES as f32;
    let colors = code.to_colors();
    let mut rects = Vec::new();
    for row in 0..n {
        let mut col = 0;
        while col < n {
            if colors[row * n + col] == qrcode::Color::Dark {
                let start = col;
                while col < n && colors[row * n + col] == qrcode::Color::Dark {
                    col += 1;
                }
                if let Some(r) = Rect::from_xywh(
                    origin_x + start as f32 * module,
                    origin_y + row as f32 * module,
                    (col - start) as f32 * module,
                    module,
                ) {
                    rects.push(r);
                }
            } else {
                col += 1;
            }
        }
    }
    fill_rects(surface, &rects, rgb::Color::new(0, 0, 0));
}

/// The vaccination certificate as a PDF: the record, signed by `signer`, with its payload in a
/// QR code and in the document's `Keywords`.
pub fn render_certificate(
    record: &CertificateRecord,
    signer: &CertificateSigner,
    lang: Lang,
) -> Result<Vec<u8>, DocumentError> {
    let w = words(lang);
    let payload = signer.sign(record);
    let code = qr(&payload)?;
    let status = if record.fully_vaccinated {
        w.fully
    } else {
        w.partially
    };
    let mut keywords = vec![
        "kataar-certificate".to_string(),
        format!("beneficiary:{}", record.beneficiary_id),
        format!("id:{}", record.id_masked),
        format!(
            "status:{}",
            if record.fully_vaccinated {
                "fully_vaccinated"
            } else {
                "partially_vaccinated"
            }
        ),
    ];
    for d in &record.doses {
        keywords.push(format!(
            "dose{}:{} {} {} {}",
            d.dose, d.vaccine, d.batch, d.date, d.centre_id
        ));
    }
    keywords.push(payload.clone());
    let metadata = Metadata::new()
        .title(format!("{} {}", w.certificate_title, record.beneficiary_id))
        .description(format!(
            "{} | {} | {} | {}",
            record.name, record.birth_year, record.id_masked, status
        ))
        .keywords(keywords)
        .language(lang_tag(lang))
        .creator("Kataar".into());
    document_with(metadata, |surface| {
        let mut page = Writer {
            surface,
            y: MARGIN_PT,
        };
        page.title(w.certificate_title);
        page.field(w.reference, &record.beneficiary_id.to_string());
        page.field(w.name, &record.name);
        page.field(w.birth_year, &record.birth_year.to_string());
        page.field(w.photo_id, &record.id_masked);
        page.y += 14.0;
        let status_size = 18.0;
        page.y += 20.0;
        let color = if record.fully_vaccinated {
            rgb::Color::new(20, 120, 50)
        } else {
            rgb::Color::new(170, 100, 0)
        };
        let width = line_width(status_size, status);
        if let Some(r) = Rect::from_xywh(MARGIN_PT - 6.0, page.y - 20.0, width + 12.0, 28.0) {
            fill_rects(page.surface, &[r], color);
        }
        page.surface.set_fill(Some(Fill {
            paint: rgb::Color::new(255, 255, 255).into(),
            opacity: NormalizedF32::ONE,
            rule: Default::default(),
        }));
        draw_line(page.surface, MARGIN_PT, page.y, status_size, status);
        page.surface.set_fill(Some(Fill::default()));
        page.y += 8.0;
        for d in &record.doses {
            page.heading(&format!("{} {}", w.dose, d.dose));
            page.field(w.vaccine, &d.vaccine);
            page.field(w.batch, &d.batch);
            page.field(w.date, &d.date);
            page.field(w.centre, &d.centre_name);
        }
        page.y += 16.0;
        page.rule();
        let qr_y = page.y;
        draw_qr(page.surface, &code, MARGIN_PT - 10.0, qr_y);
        page.y = qr_y + QR_SIDE_PT;
        page.note(w.scan);
        page.y += 4.0;
        page.field(w.key_id, signer.key_id());
    })
}

/// The signed payload stored in a certificate PDF's `Keywords`, if it is one.
pub fn certificate_payload(pdf: &[u8]) -> Option<String> {
    let doc = lopdf::Document::load_mem(pdf).ok()?;
    let info_ref = doc.trailer.get(b"Info").ok()?.as_reference().ok()?;
    let info = doc.get_object(info_ref).ok()?.as_dict().ok()?;
    let keywords = info.get(b"Keywords").ok()?;
    let text = lopdf::decode_text_string(keywords).ok()?;
    text.split(", ")
        .find(|k| k.starts_with(crate::sign::PAYLOAD_VERSION) && k.contains('.'))
        .map(str::to_owned)
}
