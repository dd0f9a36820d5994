//! Extractors whose rejections are [`ApiError`]s in the contract shape.
//!
//! - [`ApiJson<T>`]: strict JSON body. `Content-Type: application/json` (or `application/*+json`)
//!   is required (`415 unsupported_media_type`); the body is read up to the router's body limit
//!   ([`BodyLimit`], `body_bytes_max`, `413 payload_too_large`); malformed JSON, a wrong type, a
//!   missing or unknown field are `400 invalid_request` with `details.field` (a dotted path such
//!   as `slots[0].capacity.dose1_online`, or absent when no field is to blame). Request types
//!   should carry `#[serde(deny_unknown_fields)]`. An array is never read as an object, at any
//!   depth (`"capacity": [1, 2, 3, 4]` is a `400`, not four counters in field order).
//! - [`OptionalJson<T>`]: the same, except that an empty body without a content type reads as
//!   `{}` (for POSTs that need no body: cancel, check-in).
//! - [`ApiQuery<T>`]: the query string, with the same `400 invalid_request` shape.
//! - [`ApiPath<T>`]: path parameters. A parameter that does not parse (`/v1/bookings/abc` for a
//!   numeric id) is `404 not_found`: no such resource can exist, and the answer is the same as for
//!   an unknown numeric id.
//! - In a path or a query, an id (`id`, `*_id`) written in digits above [`ID_MAX`] (2^53 − 1,
//!   the contract's bound, declared as `maximum` in `/openapi.json`) is `400 invalid_request`
//!   with `details.field`, never an empty `200` or a `404`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::{header, request::Parts, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The body limit in force, inserted as a request extension by [`crate::middleware::wrap`].
/// Without it, [`BODY_BYTES_MAX_DEFAULT`] applies.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Default body limit (64 KiB, the contract's limit; config key `body_bytes_max`).
pub const BODY_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Largest id the API hands out or reads (`api.md`: ids never above 2^53, so JSON numbers stay
/// exact in every client). A path or query parameter named `id` or `*_id` above it is
/// `400 invalid_request` naming the parameter: no such object can exist, and an empty answer
/// would hide the client's mistake.
pub const ID_MAX: u64 = (1 << 53) - 1;

/// Refuses an id parameter (`id` or `*_id`) written in digits whose value is above [`ID_MAX`].
/// Values that are not digits are left to the parameter's own parser.
fn check_ids<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), ApiError> {
    for (name, value) in params {
        let is_id = name == "id" || name.ends_with("_id");
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        if is_id && digits && value.parse::<u64>().ok().is_none_or(|n| n > ID_MAX) {
            return Err(ApiError::invalid_request(
                name,
                format!("{name} must be an id between 0 and {ID_MAX}"),
            ));
        }
    }
    Ok(())
}

/// A JSON request body (strict: JSON content type required).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

/// A JSON request body that may be absent (empty body, no content type → `{}`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

/// A query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

/// Path parameters (non-parsing values → `404 not_found`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

fn is_json_content_type(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(header::CONTENT_TYPE)?;
    let text = value.to_str().ok().unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json")),
    )
}

async fn read_body(req: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(BODY_BYTES_MAX_DEFAULT, |b| b.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large());
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok((parts.headers, bytes)),
        Err(err) => {
            if is_length_limit(&err) {
                Err(ApiError::payload_too_large())
            } else {
                Err(ApiError::invalid_request_body(
                    "The request body could not be read.",
                ))
            }
        }
    }
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Deserialise JSON bytes, mapping every failure to `400 invalid_request` with the field path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde reads a struct from an array too (`[null, null]`); a v1 body is an object, and so
    // is every nested value read as a struct (see [`strict`]).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid_request_body(
            "The request body must be a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(strict::Strict(&mut de)).map_err(json_error)?;
    de.end().map_err(|e| {
        ApiError::invalid_request_body(format!(
            "Malformed JSON: trailing characters at line {} column {}.",
            e.line(),
            e.column()
        ))
    })?;
    Ok(value)
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.inner();
    match inner.classify() {
        serde_json::error::Category::Data => data_error(&path, &inner.to_string()),
        serde_json::error::Category::Eof => {
            ApiError::invalid_request_body("Malformed JSON: the body ended too early.")
        }
        _ => ApiError::invalid_request_body(format!(
            "Malformed JSON at line {} column {}.",
            inner.line(),
            inner.column()
        )),
    }
}

/// Build the `invalid_request` for a serde data error at `path` (`.` is the root).
fn data_error(path: &str, raw: &str) -> ApiError {
    let message = raw.split(" at line ").next().unwrap_or(raw).to_owned();
    let join = |name: &str| {
        // For an unknown field the path already ends with it; for a missing one it is the
        // parent's.
        if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else if path.is_empty() || path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = backticked_after(&message, "unknown field `") {
        let field = join(&name);
        return ApiError::invalid_request(&field, format!("Unknown field `{field}`."));
    }
    if let Some(name) = backticked_after(&message, "missing field `") {
        let field = join(&name);
        return ApiError::invalid_request(&field, format!("Missing field `{field}`."));
    }
    let clean = sanitize(&message);
    if path.is_empty() || path == "." {
        ApiError::invalid_request_body(format!("Invalid request body: {clean}."))
    } else {
        ApiError::invalid_request(path, format!("Invalid value for `{path}`: {clean}."))
    }
}

fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let rest = &message[start..];
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

/// Remove Rust type names from serde's messages (`expected struct Foo` → `expected an object`).
fn sanitize(message: &str) -> String {
    let mut out = message.to_owned();
    for (marker, replacement) in [
        ("expected struct ", "expected an object"),
        ("expected enum ", "expected one of the allowed values"),
        ("expected tuple struct ", "expected a value"),
        ("expected unit struct ", "expected a value"),
    ] {
        if let Some(at) = out.find(marker) {
            out.truncate(at);
            out.push_str(replacement);
        }
    }
    out
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if is_json_content_type(req.headers()) != Some(true) {
            return Err(ApiError::unsupported_media_type());
        }
        let (_, bytes) = read_body(req).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = is_json_content_type(req.headers());
        if content_type == Some(false) {
            return Err(ApiError::unsupported_media_type());
        }
        let (_, bytes) = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse_json(b"{}").map(OptionalJson);
        }
        if content_type.is_none() {
            return Err(ApiError::unsupported_media_type());
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Deserialise a query string, mapping failures to `400 invalid_request` with the field.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    check_ids(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))?;
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        data_error(&path, &err.inner().to_string())
    })
}

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(raw) = RawPathParams::from_request_parts(parts, state).await {
            check_ids(raw.iter())?;
        }
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                use axum::extract::rejection::PathRejection;
                match rejection {
                    PathRejection::FailedToDeserializePathParams(_) => Err(ApiError::not_found()),
                    other => {
                        tracing::error!(error = %other, "path extractor misconfigured");
                        Err(ApiError::internal())
                    }
                }
            }
        }
    }
}

/// A deserializer wrapper that refuses a JSON array where an object (a struct) is expected.
///
/// serde's derived `Deserialize` for a struct also reads it from a sequence of its fields in
/// order (`"capacity": [1, 2, 3, 4]` would set the four counters), and a v1 client that sends an
/// array has made a mistake the contract does not allow. [`Strict`] wraps every nested
/// deserializer, so the rule holds at every depth (also inside arrays, options and enums).
mod strict {
    use serde::de::{
        self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected,
        VariantAccess, Visitor,
    };
    use std::fmt;

    /// The wrapped deserializer.
    pub struct Strict<D>(pub D);

    struct Wrap<V> {
        inner: V,
        object_only: bool,
    }

    struct Seed<S>(S);
    struct Seq<A>(A);
    struct Map<A>(A);
    struct Enum<A>(A);
    struct Variant<A>(A);

    fn wrap<V>(inner: V) -> Wrap<V> {
        Wrap {
            inner,
            object_only: false,
        }
    }

    macro_rules! forward {
        ($($method:ident),* $(,)?) => {
            $(
                fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                    self.0.$method(wrap(visitor))
                }
            )*
        };
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
        type Error = D::Error;

        forward!(
            deserialize_any,
            deserialize_bool,
            deserialize_i8,
            deserialize_i16,
            deserialize_i32,
            deserialize_i64,
            deserialize_i128,
            deserialize_u8,
            deserialize_u16,
            deserialize_u32,
            deserialize_u64,
            deserialize_u128,
            deserialize_f32,
            deserialize_f64,
            deserialize_char,
            deserialize_str,
            deserialize_string,
            deserialize_bytes,
            deserialize_byte_buf,
            deserialize_option,
            deserialize_unit,
            deserialize_seq,
            deserialize_map,
            deserialize_identifier,
            deserialize_ignored_any,
        );

        fn deserialize_unit_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_unit_struct(name, wrap(visitor))
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_newtype_struct(name, wrap(visitor))
        }

        fn deserialize_tuple<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_tuple(len, wrap(visitor))
        }

        fn deserialize_tuple_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_tuple_struct(name, len, wrap(visitor))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            let visitor = Wrap {
                inner: visitor,
                object_only: true,
            };
            self.0.deserialize_struct(name, fields, visitor)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_enum(name, variants, wrap(visitor))
        }

        fn is_human_readable(&self) -> bool {
            self.0.is_human_readable()
        }
    }

    macro_rules! visit {
        ($($method:ident: $ty:ty),* $(,)?) => {
            $(
                fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                    self.inner.$method(v)
                }
            )*
        };
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.inner.expecting(f)
        }

        visit!(
            visit_bool: bool,
            visit_i8: i8,
            visit_i16: i16,
            visit_i32: i32,
            visit_i64: i64,
            visit_i128: i128,
            visit_u8: u8,
            visit_u16: u16,
            visit_u32: u32,
            visit_u64: u64,
            visit_u128: u128,
            visit_f32: f32,
            visit_f64: f64,
            visit_char: char,
            visit_str: &str,
            visit_borrowed_str: &'de str,
            visit_string: String,
            visit_bytes: &[u8],
            visit_borrowed_bytes: &'de [u8],
            visit_byte_buf: Vec<u8>,
        );

        fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.inner.visit_some(Strict(d))
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.inner.visit_newtype_struct(Strict(d))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            if self.object_only {
                return Err(de::Error::invalid_type(Unexpected::Seq, &"an object"));
            }
            self.inner.visit_seq(Seq(seq))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.inner.visit_map(Map(map))
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
            self.inner.visit_enum(Enum(data))
        }
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
        type Value = S::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
            self.0.deserialize(Strict(d))
        }
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
        type Error = A::Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, A::Error> {
            self.0.next_element_seed(Seed(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.0.next_key_seed(Seed(seed))
        }

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.next_value_seed(Seed(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<A> {
        type Error = A::Error;
        type Variant = Variant<A::Variant>;

        fn variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<(T::Value, Self::Variant), A::Error> {
            let (value, variant) = self.0.variant_seed(Seed(seed))?;
            Ok((value, Variant(variant)))
        }
    }

    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<A> {
        type Error = A::Error;

        fn unit_variant(self) -> Result<(), A::Error> {
            self.0.unit_variant()
        }

        fn newtype_variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.newtype_variant_seed(Seed(seed))
        }

        fn tuple_variant<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.tuple_variant(len, wrap(visitor))
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            let visitor = Wrap {
                inner: visitor,
                object_only: true,
            };
            self.0.struct_variant(fields, visitor)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        dose1_online: u32,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        birth_year: u32,
        #[serde(default)]
        slots: Vec<Inner>,
    }

    fn field(e: &ApiError) -> Option<String> {
        e.details
            .as_ref()?
            .get("field")?
            .as_str()
            .map(str::to_owned)
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Req>(br#"{"name":"a","birth_year":"x"}"#).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("birth_year"));
        let e = parse_json::<Req>(br#"{"name":"a","birth_year":1,"nme":1}"#).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("nme"));
        let e = parse_json::<Req>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("birth_year"));
        let e = parse_json::<Req>(br#"{"name":"a","birth_year":1,"slots":[{"x":1}]}"#).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("slots[0].x"));
        let e = parse_json::<Req>(br#"{"name":"a","birth_year":1,"slots":[{"dose1_online":-1}]}"#)
            .unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("slots[0].dose1_online"));
        let e = parse_json::<Req>(br#" [ "a", 1 ]"#).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        let e = parse_json::<Req>(br#"{"name":"#).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert_eq!(field(&e), None);
        let e = parse_json::<Req>(b"[1]").unwrap_err();
        assert!(!e.message.contains("Req"), "{}", e.message);
    }

    #[test]
    fn arrays_are_never_read_as_objects() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
            maybe: Option<Inner>,
            #[serde(default)]
            slots: Vec<Inner>,
        }
        let ok: Outer = parse_json(
            br#"{"inner":{"dose1_online":1},"maybe":{"dose1_online":2},"slots":[{"dose1_online":3}]}"#,
        )
        .unwrap();
        assert_eq!(ok.slots.len(), 1);
        for (body, path) in [
            (&br#"{"inner":[1],"maybe":null}"#[..], "inner"),
            (br#"{"inner":{"dose1_online":1},"maybe":[2]}"#, "maybe"),
            (
                br#"{"inner":{"dose1_online":1},"maybe":null,"slots":[[3]]}"#,
                "slots[0]",
            ),
        ] {
            let e = parse_json::<Outer>(body).unwrap_err();
            assert_eq!(e.code, "invalid_request");
            assert_eq!(field(&e).as_deref(), Some(path), "{}", e.message);
            assert!(e.message.contains("expected an object"), "{}", e.message);
        }
    }

    #[test]
    fn query_errors_name_the_field() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Q {
            district_id: u32,
            days: Option<u8>,
        }
        let q: Q = parse_query("district_id=312&days=3").unwrap();
        assert_eq!(q.district_id, 312);
        let e = parse_query::<Q>("district_id=abc").unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("district_id"));
        let e = parse_query::<Q>("district_id=1&dayz=2").unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("dayz"));

        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Ids {
            district_id: u64,
        }
        let at_bound = format!("district_id={ID_MAX}");
        assert_eq!(parse_query::<Ids>(&at_bound).unwrap().district_id, ID_MAX);
        assert_eq!(
            parse_query::<Ids>("district_id=000312")
                .unwrap()
                .district_id,
            312
        );
        for above in [
            format!("district_id={}", ID_MAX + 1),
            "district_id=9223372036854775808".to_owned(),
            "district_id=99999999999999999999999".to_owned(),
        ] {
            let e = parse_query::<Ids>(&above).unwrap_err();
            assert_eq!(e.code, "invalid_request", "{above}");
            assert_eq!(field(&e).as_deref(), Some("district_id"), "{above}");
        }
    }
}
