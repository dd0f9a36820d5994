//! The message catalogue: one English and one Hindi sentence for every error code, and the
//! choice between them from `Accept-Language`.
//!
//! Every [`crate::ApiError`] constructor takes its English sentence from here. A handler may
//! refine the English sentence (`birth_year must be between 1900 and 2026`); a Hindi answer
//! always carries the catalogue's Hindi sentence for the code, with the same `details` (the
//! field, the date, the seconds), so nothing a program reads changes with the language.
//!
//! Language choice: `Accept-Language` is read as a list of language ranges with optional
//! `q` weights (RFC 9110 §12.5.4). Hindi (`hi`, `hi-IN`, `hi_IN`, any `hi-*`) answers when it
//! is listed with a weight above zero and no English range (`en`, `en-*`) or `*` outweighs it;
//! between equal weights the one listed first wins. Everything else is English.

/// The language of an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Language {
    /// English (the default).
    #[default]
    En,
    /// Hindi.
    Hi,
}

/// Longest `Accept-Language` value looked at, in bytes (longer ones are answered in English).
pub const ACCEPT_LANGUAGE_BYTES_MAX: usize = 256;

impl Language {
    /// The language `Accept-Language` asks for (English when absent or unreadable).
    pub fn from_accept_language(value: Option<&str>) -> Language {
        let Some(value) = value.filter(|v| v.len() <= ACCEPT_LANGUAGE_BYTES_MAX) else {
            return Language::En;
        };
        let mut best_hi: Option<(f32, usize)> = None;
        let mut best_en: Option<(f32, usize)> = None;
        for (i, item) in value.split(',').enumerate() {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q.is_nan() || q <= 0.0 {
                continue;
            }
            let primary = range.split(['-', '_']).next().unwrap_or("");
            let slot = match primary {
                "hi" => &mut best_hi,
                "en" | "*" => &mut best_en,
                _ => continue,
            };
            if slot.is_none_or(|(best, _)| q > best) {
                *slot = Some((q, i));
            }
        }
        match (best_hi, best_en) {
            (Some(_), None) => Language::Hi,
            (Some((qh, ih)), Some((qe, ie))) if qh > qe || (qh == qe && ih < ie) => Language::Hi,
            _ => Language::En,
        }
    }

    /// The BCP 47 tag (`en`, `hi`), as sent in `Content-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Hi => "hi",
        }
    }
}

/// One catalogue entry.
#[derive(Clone, Copy, Debug)]
pub struct Message {
    /// The error code.
    pub code: &'static str,
    /// The English sentence.
    pub en: &'static str,
    /// The Hindi sentence.
    pub hi: &'static str,
}

macro_rules! catalogue {
    ($($code:literal => $en:literal, $hi:literal;)*) => {
        /// Every error code with its sentences.
        pub const CATALOGUE: &[Message] = &[$(Message { code: $code, en: $en, hi: $hi }),*];
    };
}

catalogue! {
    "invalid_request" => "The request is malformed.",
        "अनुरोध सही नहीं है।";
    "unauthenticated" => "Authentication is required.",
        "पहले लॉग इन करें।";
    "otp_invalid" => "The OTP is not correct.",
        "OTP सही नहीं है।";
    "otp_expired" => "This OTP transaction has expired or is used up; ask for a new OTP.",
        "यह OTP समाप्त हो गया है या इस्तेमाल हो चुका है; नया OTP माँगें।";
    "forbidden" => "This key may not perform this action.",
        "इस कुंजी को यह काम करने की अनुमति नहीं है।";
    "pass_invalid" => "The waiting-room pass is not valid for this booking.",
        "प्रतीक्षा कतार का पास इस बुकिंग के लिए मान्य नहीं है।";
    "not_found" => "No such resource.",
        "यह जानकारी नहीं मिली।";
    "method_not_allowed" => "This method is not allowed on this path.",
        "इस पते पर यह तरीका अनुमत नहीं है।";
    "pool_full" => "No place is left in this slot.",
        "इस समय स्लॉट में कोई जगह नहीं बची है।";
    "already_booked" => "This person already has a live booking for this dose.",
        "इस व्यक्ति की इस खुराक के लिए पहले से बुकिंग है।";
    "not_eligible" => "This person is outside the session's age band.",
        "यह व्यक्ति इस सत्र की आयु सीमा में नहीं आता।";
    "dose_sequence" => "This dose does not follow the doses on record.",
        "यह खुराक दर्ज खुराकों के क्रम में नहीं है।";
    "dose_interval" => "The second dose is not due yet.",
        "दूसरी खुराक का समय अभी नहीं हुआ है।";
    "vaccine_mismatch" => "The vaccine differs from the one already received.",
        "यह टीका पहले लगे टीके से अलग है।";
    "session_closed" => "This session is past or cancelled.",
        "यह सत्र बीत चुका है या रद्द हो गया है।";
    "not_open" => "This session is not open for booking yet.",
        "इस सत्र की बुकिंग अभी शुरू नहीं हुई है।";
    "queue_required" => "A waiting room is active for this session; join the queue first.",
        "इस सत्र के लिए प्रतीक्षा कतार चल रही है; पहले कतार में शामिल हों।";
    "sold_out" => "Everything in this release is booked.",
        "इस रिलीज़ की सभी जगहें बुक हो चुकी हैं।";
    "booking_state" => "The booking is not in a state that allows this action.",
        "बुकिंग की मौजूदा स्थिति में यह काम नहीं हो सकता।";
    "capacity_below_booked" => "The capacity cannot go below the places already booked.",
        "क्षमता बुक हो चुकी जगहों से कम नहीं की जा सकती।";
    "id_already_registered" => "This photo ID is registered on another account.",
        "यह फ़ोटो पहचान पत्र किसी दूसरे खाते में दर्ज है।";
    "beneficiary_exists" => "This person is already registered on this account.",
        "यह व्यक्ति इस खाते में पहले से दर्ज है।";
    "beneficiary_limit" => "This account already has the maximum number of beneficiaries.",
        "इस खाते में लाभार्थियों की अधिकतम संख्या पूरी हो चुकी है।";
    "beneficiary_in_use" => "This beneficiary has bookings or doses and cannot be removed.",
        "इस लाभार्थी की बुकिंग या खुराक दर्ज है, इसलिए हटाया नहीं जा सकता।";
    "not_vaccinated" => "No dose is recorded for this beneficiary.",
        "इस लाभार्थी की कोई खुराक दर्ज नहीं है।";
    "payload_too_large" => "The request body is too large.",
        "अनुरोध का आकार बहुत बड़ा है।";
    "unsupported_media_type" =>
        "The request body must be JSON (Content-Type: application/json).",
        "अनुरोध JSON में होना चाहिए (Content-Type: application/json)।";
    "idempotency_key_mismatch" => "This Idempotency-Key was used with a different request body.",
        "यह Idempotency-Key किसी दूसरे अनुरोध के साथ इस्तेमाल हो चुकी है।";
    "idempotency_in_progress" =>
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        "इस Idempotency-Key वाला अनुरोध अभी चल रहा है; थोड़ी देर में फिर कोशिश करें।";
    "idempotency_key_required" =>
        "This request needs an Idempotency-Key header (1-64 printable ASCII characters).",
        "इस अनुरोध के साथ Idempotency-Key हेडर भेजें (1-64 छपने योग्य ASCII अक्षर)।";
    "too_many_requests" => "Too many requests; retry later.",
        "बहुत अधिक अनुरोध; थोड़ी देर बाद फिर कोशिश करें।";
    "otp_resend_too_soon" => "An OTP was sent moments ago; wait before asking again.",
        "अभी-अभी OTP भेजा गया है; दोबारा माँगने से पहले थोड़ा रुकें।";
    "otp_limit_reached" => "Too many OTPs were requested for this mobile number.",
        "इस मोबाइल नंबर के लिए बहुत अधिक OTP माँगे जा चुके हैं।";
    "internal" => "Something went wrong on our side.",
        "हमारी ओर से कोई गड़बड़ी हुई है।";
    "overloaded" => "The service is busy; retry later.",
        "सेवा अभी व्यस्त है; थोड़ी देर बाद फिर कोशिश करें।";
    "store_unavailable" => "The change could not be saved; nothing was changed. Retry later.",
        "बदलाव सहेजा नहीं जा सका; कुछ नहीं बदला। थोड़ी देर बाद फिर कोशिश करें।";
    "not_ready" => "The service is not ready yet.",
        "सेवा अभी तैयार नहीं है।";
}

/// The catalogue entry for a code.
pub fn lookup(code: &str) -> Option<&'static Message> {
    CATALOGUE.iter().find(|m| m.code == code)
}

/// The sentence for a code in a language (`None` for a code not in the catalogue).
pub fn message(code: &str, language: Language) -> Option<&'static str> {
    lookup(code).map(|m| match language {
        Language::En => m.en,
        Language::Hi => m.hi,
    })
}

/// The English sentence for a code (the constructors' default; a generic one for an unknown
/// code, which the catalogue test rules out for every constructor).
pub fn english(code: &str) -> &'static str {
    message(code, Language::En).unwrap_or("The request cannot be served.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_devanagari(s: &str) -> bool {
        s.chars().any(|c| ('\u{0900}'..='\u{097F}').contains(&c))
    }

    #[test]
    fn every_code_has_an_english_and_a_hindi_sentence() {
        let mut seen = std::collections::HashSet::new();
        for m in CATALOGUE {
            assert!(seen.insert(m.code), "{} listed twice", m.code);
            assert!(
                !m.en.is_empty() && !has_devanagari(m.en),
                "{}: English",
                m.code
            );
            assert!(
                has_devanagari(m.hi),
                "{}: the Hindi sentence has no Devanagari",
                m.code
            );
            assert_ne!(m.en, m.hi, "{}", m.code);
        }
    }

    #[test]
    fn the_contracts_codes_are_all_in_the_catalogue() {
        // The error catalogue of api.md, every status row.
        let contract = "invalid_request unauthenticated otp_invalid otp_expired forbidden \
            pass_invalid not_found method_not_allowed pool_full already_booked not_eligible \
            dose_sequence dose_interval vaccine_mismatch session_closed not_open queue_required \
            sold_out booking_state capacity_below_booked id_already_registered \
            beneficiary_exists beneficiary_limit beneficiary_in_use not_vaccinated \
            payload_too_large unsupported_media_type idempotency_key_mismatch \
            idempotency_key_required too_many_requests otp_resend_too_soon otp_limit_reached \
            internal overloaded store_unavailable not_ready";
        for code in contract.split_whitespace() {
            assert!(lookup(code).is_some(), "{code} is not in the catalogue");
        }
    }

    #[test]
    fn accept_language_picks_hindi_only_where_asked() {
        let l = |v: &str| Language::from_accept_language(Some(v));
        assert_eq!(Language::from_accept_language(None), Language::En);
        for hi in [
            "hi",
            "hi-IN",
            "hi_IN",
            "HI",
            "hi-IN,hi;q=0.9,en;q=0.8",
            "en;q=0.5, hi",
            "hi, en",
            "fr, hi;q=0.4",
        ] {
            assert_eq!(l(hi), Language::Hi, "{hi}");
        }
        for en in [
            "en",
            "en-IN,en;q=0.9",
            "en, hi",
            "hi;q=0.5, en",
            "hi;q=0",
            "fr",
            "",
            "*",
            "*, hi;q=0.8",
            "hindi",
        ] {
            assert_eq!(l(en), Language::En, "{en}");
        }
        assert_eq!(
            l(&format!("hi,{}", " ".repeat(ACCEPT_LANGUAGE_BYTES_MAX))),
            Language::En
        );
    }
}
