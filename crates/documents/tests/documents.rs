//! The rendered documents, read back by independent tools: `lopdf` parses them, poppler's
//! `pdftotext` extracts their text and `pdftoppm` renders them to PNG.
#![allow(clippy::unwrap_used)]

use kataar_documents::{
    certificate_payload, render_certificate, render_slip, verify, CertificateRecord,
    CertificateSigner, DoseEntry, Lang, SlipData, SlipPerson,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn slip(people: usize) -> SlipData {
    SlipData {
        reference: "4711".into(),
        centre_name: "District Hospital Bhopal".into(),
        centre_address: "Sultania Road, Bhopal 462001".into(),
        date: "2026-12-07".into(),
        slot: "09:00-11:00".into(),
        vaccine: "COVISHIELD".into(),
        dose: 1,
        people: (0..people)
            .map(|i| SlipPerson {
                name: ["Asha Devi", "राम कुमार"][i % 2].into(),
                id_masked: format!("XXXX-XXXX-012{i}"),
                token_number: 17 + i as u32,
                booking_ref: format!("{}", 4711 + i),
            })
            .collect(),
    }
}

fn record(doses: u8) -> CertificateRecord {
    let d = (1..=doses)
        .map(|n| DoseEntry {
            dose: n,
            vaccine: "COVAXIN".into(),
            batch: format!("BB21{n}A"),
            date: format!("2026-0{n}-20"),
            centre_id: 12,
            centre_name: "Primary Health Centre Rajgarh".into(),
        })
        .collect();
    CertificateRecord::new(9001, "आशा देवी".into(), 1975, "XXXX-XXXX-4321".into(), d)
}

fn signer() -> CertificateSigner {
    CertificateSigner::from_secret(&[42u8; 32]).unwrap()
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kataar-documents");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = out_dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Renders page 1 at 100 dpi to `<pdf stem>.png` and returns the PNG's bytes and path.
/// Text without whitespace: poppler puts a space inside some Devanagari clusters (where a
/// vowel sign's glyph is offset), so Devanagari is compared with spaces removed.
fn squeezed(text: &str) -> String {
    text.split_whitespace().collect()
}

fn contains_text(haystack: &str, needle: &str) -> bool {
    haystack.contains(needle) || squeezed(haystack).contains(&squeezed(needle))
}

fn pdftoppm(pdf: &Path) -> (Vec<u8>, PathBuf) {
    let prefix = pdf.with_extension("");
    let status = Command::new("pdftoppm")
        .args(["-png", "-r", "100", "-singlefile"])
        .arg(pdf)
        .arg(&prefix)
        .status()
        .expect("pdftoppm (poppler-utils) must be installed");
    assert!(status.success());
    let png = prefix.with_extension("png");
    (std::fs::read(&png).unwrap(), png)
}

fn info(pdf: &[u8]) -> (String, String, String) {
    let doc = lopdf::Document::load_mem(pdf).expect("lopdf parses the PDF");
    assert_eq!(doc.get_pages().len(), 1);
    let id = doc.trailer.get(b"Info").unwrap().as_reference().unwrap();
    let dict = doc.get_object(id).unwrap().as_dict().unwrap();
    let text = |k: &[u8]| lopdf::decode_text_string(dict.get(k).unwrap()).unwrap();
    (text(b"Title"), text(b"Subject"), text(b"Keywords"))
}

#[test]
fn a_slip_parses_and_holds_the_booking() {
    let pdf = render_slip(&slip(2), Lang::En).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let (title, subject, keywords) = info(&pdf);
    assert!(title.contains("4711"), "{title}");
    assert!(subject.contains("District Hospital Bhopal"), "{subject}");
    for k in [
        "token:17",
        "token:18",
        "date:2026-12-07",
        "slot:09:00-11:00",
        "vaccine:COVISHIELD",
        "dose:1",
        "id:XXXX-XXXX-0120",
    ] {
        assert!(keywords.contains(k), "{k} missing from {keywords}");
    }
    let text = pdftotext(&write("slip-en.pdf", &pdf));
    for s in [
        "Appointment slip",
        "Token number",
        "17",
        "18",
        "District Hospital Bhopal",
        "2026-12-07",
        "09:00-11:00",
        "COVISHIELD",
        "XXXX-XXXX-0121",
        "Asha Devi",
        "राम कुमार",
    ] {
        assert!(
            contains_text(&text, s),
            "{s} missing from the slip's text:\n{text}"
        );
    }
}

#[test]
fn hindi_is_shaped_and_reads_back_as_the_same_text() {
    let en = render_slip(&slip(1), Lang::En).unwrap();
    let hi = render_slip(&slip(1), Lang::Hi).unwrap();
    let hi_path = write("slip-hi.pdf", &hi);
    let text = pdftotext(&hi_path);
    // The extracted text is the original characters (conjuncts, reordered ि, nukta included).
    for s in ["अपॉइंटमेंट पर्ची", "टोकन संख्या", "फ़ोटो पहचान पत्र", "तारीख"]
    {
        assert!(
            contains_text(&text, s),
            "{s} missing from the Hindi slip's text:\n{text}"
        );
    }
    assert!(!text.contains("Token number"));
    let (hi_png, hi_png_path) = pdftoppm(&hi_path);
    let (en_png, _) = pdftoppm(&write("slip-en-1.pdf", &en));
    assert!(hi_png.starts_with(b"\x89PNG"), "{}", hi_png_path.display());
    assert_ne!(
        hi_png, en_png,
        "the Hindi page must look different from the English one"
    );
    println!("Hindi slip rendered to {}", hi_png_path.display());
}

#[test]
fn a_certificate_parses_holds_every_dose_and_its_payload_verifies() {
    let s = signer();
    let rec = record(2);
    let pdf = render_certificate(&rec, &s, Lang::En).unwrap();
    let (_, subject, keywords) = info(&pdf);
    assert!(
        subject.contains("1975") && subject.contains("XXXX-XXXX-4321"),
        "{subject}"
    );
    assert!(keywords.contains("status:fully_vaccinated"), "{keywords}");
    assert!(
        keywords.contains("dose1:COVAXIN BB211A 2026-01-20 12"),
        "{keywords}"
    );
    assert!(
        keywords.contains("dose2:COVAXIN BB212A 2026-02-20 12"),
        "{keywords}"
    );
    let payload = certificate_payload(&pdf).expect("the payload is in the PDF");
    let v = verify(&payload, &[s.public_key()]).unwrap();
    assert_eq!(v.record, rec);
    let path = write("certificate-en.pdf", &pdf);
    let text = pdftotext(&path);
    for t in [
        "Certificate of vaccination",
        "Fully vaccinated",
        "आशा देवी",
        "1975",
        "XXXX-XXXX-4321",
        "BB211A",
        "BB212A",
        "2026-02-20",
        "Primary Health Centre Rajgarh",
        s.key_id(),
    ] {
        assert!(
            contains_text(&text, t),
            "{t} missing from the certificate's text:\n{text}"
        );
    }
    let (png, png_path) = pdftoppm(&path);
    assert!(png.starts_with(b"\x89PNG"), "{}", png_path.display());
}

#[test]
fn a_certificate_after_one_dose_is_partial_and_in_hindi_on_request() {
    let s = signer();
    let pdf = render_certificate(&record(1), &s, Lang::Hi).unwrap();
    let path = write("certificate-hi.pdf", &pdf);
    let text = pdftotext(&path);
    assert!(contains_text(&text, "टीकाकरण प्रमाणपत्र"), "{text}");
    assert!(contains_text(&text, "आंशिक टीकाकरण"), "{text}");
    assert!(!contains_text(&text, "पूर्ण टीकाकरण"), "{text}");
    let (_, png_path) = pdftoppm(&path);
    println!("Hindi certificate rendered to {}", png_path.display());
    let payload = certificate_payload(&pdf).unwrap();
    let v = verify(&payload, &[s.public_key()]).unwrap();
    assert!(!v.record.fully_vaccinated);
    // Another server's key does not verify it.
    let other = CertificateSigner::from_secret(&[7u8; 32]).unwrap();
    assert!(verify(&payload, &[other.public_key()]).is_err());
}

#[test]
fn a_slip_is_not_a_certificate() {
    let pdf = render_slip(&slip(1), Lang::En).unwrap();
    assert_eq!(certificate_payload(&pdf), None);
    assert_eq!(certificate_payload(b"not a pdf"), None);
}
