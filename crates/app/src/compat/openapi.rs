//! The v2 paths in `/openapi.json` (tag `cowin-v2`), built from one table so every route the
//! router mounts is described with its parameters, its token need and its answers.

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ContentBuilder, OpenApi, OpenApiBuilder, Required, ResponseBuilder};

/// One v2 operation.
struct Op {
    get: bool,
    path: &'static str,
    summary: &'static str,
    token: bool,
    /// Query parameters: (name, required).
    query: &'static [(&'static str, bool)],
    /// The JSON body, in words (POST only).
    body: &'static str,
    /// (status, description).
    answers: &'static [(&'static str, &'static str)],
}

const E400: (&str, &str) = (
    "400",
    "`{errorCode, error}` (see the README's APPOIN table)",
);
const E401: (&str, &str) = ("401", "plain text `Unauthenticated access!`");
const E429: (&str, &str) = (
    "429",
    "`{\"error\": \"Too Many Requests\"}` with `Retry-After`",
);
const CAL: &str = "`{centers: [{center_id, name, address, state_name, district_name, block_name, \
pincode (number), lat, long, from, to, fee_type: Free|Paid, sessions: [{session_id (UUID string), \
date DD-MM-YYYY, available_capacity, available_capacity_dose1, available_capacity_dose2, \
min_age_limit, max_age_limit (when set), allow_all_age, vaccine, slots: [\"09:00AM-11:00AM\"]}], \
vaccine_fees (paid)}]}`; 7 days from `date`; a centre only with a matching session";
const FIND: &str = "`{sessions: [every centre field, fee, and every session field]}`, one day";
const LATLONG: &str = "`{centers: [{center_id, name, district_name, state_name, location, \
pincode, block_name, lat, long}]}` (pincode, lat, long as strings), the nearest 20";

const OPS: &[Op] = &[
    Op { get: true, path: "/api/v2/admin/location/states", summary: "States by name", token: false, query: &[], body: "",
        answers: &[("200", "`{states: [{state_id, state_name, state_name_l}], ttl: 24}`")] },
    Op { get: true, path: "/api/v2/admin/location/districts/{state_id}", summary: "A state's districts by name (200 for any numeric id)", token: false, query: &[], body: "",
        answers: &[("200", "`{districts: [{district_id, district_name, district_name_l}], ttl: 24}`"), E400] },
    Op { get: false, path: "/api/v2/auth/generateMobileOTP", summary: "Send an OTP (secret accepted, not checked)", token: false, query: &[], body: "`{mobile, secret}`",
        answers: &[("200", "`{txnId}` (a UUID)"), E400, E429] },
    Op { get: false, path: "/api/v2/auth/validateMobileOtp", summary: "Confirm with the SHA-256 hex of the OTP", token: false, query: &[], body: "`{otp, txnId}`",
        answers: &[("200", "`{token}` (the v1 JWT)"), ("400", "`USRAUT0014` wrong OTP, `USRAUT0012` missing field")] },
    Op { get: false, path: "/api/v2/auth/public/generateOTP", summary: "Send an OTP", token: false, query: &[], body: "`{mobile}`",
        answers: &[("200", "`{txnId}`"), E400, E429] },
    Op { get: false, path: "/api/v2/auth/public/confirmOTP", summary: "Confirm an OTP", token: false, query: &[], body: "`{otp, txnId}`",
        answers: &[("200", "`{token}`"), ("400", "`USRAUT0014`, `USRAUT0012`")] },
    Op { get: false, path: "/api/v2/auth/generateOTP", summary: "Send an OTP (partner pair)", token: false, query: &[], body: "`{mobile}`",
        answers: &[("200", "`{txnId}`"), E400, E429] },
    Op { get: false, path: "/api/v2/auth/confirmOTP", summary: "Confirm an OTP (partner pair)", token: false, query: &[], body: "`{otp, txnId}`",
        answers: &[("200", "`{token, isNewAccount: Y|N}`"), ("400", "`USRAUT0014`, `USRAUT0012`")] },
    Op { get: false, path: "/api/v2/auth/getRecaptcha", summary: "An SVG captcha of 5 glyphs", token: true, query: &[], body: "none or `{}`",
        answers: &[("200", "`{captcha: \"<svg …>\"}`"), E401] },
    Op { get: true, path: "/api/v2/registration/beneficiary/genders", summary: "Gender ids", token: false, query: &[], body: "",
        answers: &[("200", "`{genders: [{id, gender, gender_l}], ttl: 24}`")] },
    Op { get: true, path: "/api/v2/registration/beneficiary/idTypes", summary: "Photo-ID type ids", token: false, query: &[], body: "",
        answers: &[("200", "`{types: [{id, type, type_l}], ttl: 24}`")] },
    Op { get: false, path: "/api/v2/registration/beneficiary/new", summary: "Register a beneficiary (v1's rules)", token: true, query: &[],
        body: "`{name, birth_year, gender_id, photo_id_type, photo_id_number, comorbidity_ind, consent_version}`",
        answers: &[("200", "`{beneficiary_reference_id}` (14 digits)"), ("400", "`BENREG0001`"), E401, ("409", "`BENREG0002`..`BENREG0004`")] },
    Op { get: false, path: "/api/v2/registration/beneficiary/delete", summary: "Remove a beneficiary with no booking and no dose", token: true, query: &[],
        body: "`{beneficiary_reference_id}`", answers: &[("204", "Removed"), ("400", "`BENREG0006`"), E401, ("409", "`BENREG0005`")] },
    Op { get: true, path: "/api/v2/appointment/sessions/public/calendarByDistrict", summary: "Seven days of a district", token: false,
        query: &[("district_id", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", CAL), E400] },
    Op { get: true, path: "/api/v2/appointment/sessions/public/calendarByPin", summary: "Seven days of a pincode", token: false,
        query: &[("pincode", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", CAL), ("400", "`APPOIN0018` Invalid Pincode")] },
    Op { get: true, path: "/api/v2/appointment/sessions/public/calendarByCenter", summary: "Seven days of a centre", token: false,
        query: &[("center_id", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", "`{centers: {…}}` (one object) or `{}`"), E400] },
    Op { get: true, path: "/api/v2/appointment/sessions/public/findByDistrict", summary: "One day of a district, flat", token: false,
        query: &[("district_id", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", FIND), E400] },
    Op { get: true, path: "/api/v2/appointment/sessions/public/findByPin", summary: "One day of a pincode, flat", token: false,
        query: &[("pincode", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", FIND), ("400", "`APPOIN0018` Invalid Pincode")] },
    Op { get: true, path: "/api/v2/appointment/sessions/calendarByDistrict", summary: "calendarByDistrict with a token", token: true,
        query: &[("district_id", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", CAL), E400, E401] },
    Op { get: true, path: "/api/v2/appointment/sessions/calendarByPin", summary: "calendarByPin with a token", token: true,
        query: &[("pincode", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", CAL), E400, E401] },
    Op { get: true, path: "/api/v2/appointment/sessions/calendarByCenter", summary: "calendarByCenter with a token", token: true,
        query: &[("center_id", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", "`{centers: {…}}` or `{}`"), E400, E401] },
    Op { get: true, path: "/api/v2/appointment/sessions/findByDistrict", summary: "findByDistrict with a token", token: true,
        query: &[("district_id", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", FIND), E400, E401] },
    Op { get: true, path: "/api/v2/appointment/sessions/findByPin", summary: "findByPin with a token", token: true,
        query: &[("pincode", true), ("date", false), ("vaccine", false)], body: "", answers: &[("200", FIND), E400, E401] },
    Op { get: true, path: "/api/v2/appointment/centers/public/findByLatLong", summary: "Centres near a point", token: false,
        query: &[("lat", true), ("long", true)], body: "", answers: &[("200", LATLONG), E400] },
    Op { get: true, path: "/api/v2/appointment/centers/findByLatLong", summary: "findByLatLong with a token", token: true,
        query: &[("lat", true), ("long", true)], body: "", answers: &[("200", LATLONG), E400, E401] },
    Op { get: true, path: "/api/v2/appointment/beneficiaries", summary: "The account's beneficiaries and appointments", token: true, query: &[], body: "",
        answers: &[("200", "`{beneficiaries: [{beneficiary_reference_id, name, birth_year, gender, mobile_number, photo_id_type, photo_id_number, comorbidity_ind, vaccination_status, vaccine, dose1_date, dose2_date, appointments: [{appointment_id, center_id, name, state_name, district_name, block_name, from, to, dose, date, slot, session_id}]}]}`"), E401] },
    Op { get: false, path: "/api/v2/appointment/schedule", summary: "Book every listed beneficiary in one slot, all or none", token: true, query: &[],
        body: "`{beneficiaries: [reference ids], dose: 1|1.0|\"1\", session_id, slot: \"09:00AM-11:00AM\", center_id?, captcha?}`",
        answers: &[("200", "`{appointment_confirmation_no}`"), ("400", "`APPOIN0015` bad session or slot, `APPOIN0017` bad beneficiary, `APPOIN0044` wrong captcha, `APPOIN0011`"), E401,
            ("409", "`APPOIN0040` full, `APPOIN0022` already booked, `APPOIN0045`..`APPOIN0050` other rules"), E429] },
    Op { get: false, path: "/api/v2/appointment/reschedule", summary: "Move an appointment as one step", token: true, query: &[],
        body: "`{appointment_id, session_id, slot}`", answers: &[("200", "`{appointment_confirmation_no}`"), ("400", "`APPOIN0015`, `APPOIN0016`"), E401, ("409", "the booking refusals")] },
    Op { get: false, path: "/api/v2/appointment/cancel", summary: "Cancel an appointment's beneficiaries", token: true, query: &[],
        body: "`{appointment_id, beneficiariesToCancel: [reference ids]}`", answers: &[("204", "Cancelled"), ("400", "`APPOIN0016`, `APPOIN0017`"), E401, ("409", "`APPOIN0052` checked in or administered")] },
    Op { get: true, path: "/api/v2/appointment/appointmentslip/download", summary: "The appointment slip", token: true,
        query: &[("appointment_id", true)], body: "", answers: &[("200", "`application/pdf`: centre, date, slot, vaccine, dose, each person's masked ID and token number"), ("400", "`APPOIN0016`"), E401] },
    Op { get: true, path: "/api/v2/registration/certificate/public/download", summary: "The signed vaccination certificate", token: true,
        query: &[("beneficiary_reference_id", true)], body: "", answers: &[("200", "`application/pdf`: name, birth year, masked ID, each dose (date, vaccine, batch, centre), a QR code with the signed payload"), ("400", "`APPOIN0017`"), E401, ("409", "`CERTIF0001` no administered dose")] },
    Op { get: true, path: "/api/v2/registration/certificate/download", summary: "The signed vaccination certificate (same as the public path)", token: true,
        query: &[("beneficiary_reference_id", true)], body: "", answers: &[("200", "`application/pdf`"), ("400", "`APPOIN0017`"), E401, ("409", "`CERTIF0001` no administered dose")] },
];

/// Every v2 path mounted by [`super::router`].
pub fn paths() -> Vec<&'static str> {
    OPS.iter().map(|o| o.path).collect()
}

/// The v2 part of the OpenAPI document.
pub fn openapi() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for op in OPS {
        let mut b = OperationBuilder::new()
            .tag("cowin-v2")
            .summary(Some(op.summary));
        for (name, required) in op.query {
            b = b.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(if *required {
                        Required::True
                    } else {
                        Required::False
                    }),
            );
        }
        if op.path.contains("{state_id}") {
            b = b.parameter(
                ParameterBuilder::new()
                    .name("state_id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True),
            );
        }
        if !op.body.is_empty() {
            b = b.request_body(Some(
                RequestBodyBuilder::new()
                    .description(Some(format!(
                        "{}; JSON, with or without `Content-Type`; unknown fields ignored",
                        op.body
                    )))
                    .content("application/json", ContentBuilder::new().build())
                    .build(),
            ));
        }
        if op.token {
            b = b.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        for (status, description) in op.answers {
            b = b.response(
                *status,
                ResponseBuilder::new().description(*description).build(),
            );
        }
        let method = if op.get {
            HttpMethod::Get
        } else {
            HttpMethod::Post
        };
        paths = paths.path(op.path, PathItem::new(method, b.build()));
    }
    OpenApiBuilder::new()
        .paths(paths.build())
        .tags(Some([TagBuilder::new()
            .name("cowin-v2")
            .description(Some(
                "CoWIN public API v2 compatibility: the paths, fields and quirks 2021 clients \
                 read, on the same engine as v1",
            ))
            .build()]))
        .build()
}
