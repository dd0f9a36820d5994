//! HTTP-edge metrics: names, buckets and the Prometheus recorder.
//!
//! Every name has the `kataar_` prefix and a unit suffix; labels stay bounded (route template or
//! `unmatched`, a fixed method set, the status code, a fixed close reason).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: requests answered, labels `route`, `method`, `status` (`499` when the client went
/// away before the answer).
pub const HTTP_REQUESTS_TOTAL: &str = "kataar_http_requests_total";
/// Histogram (seconds): time from routing to the response head, labels `route`, `method`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "kataar_http_request_duration_seconds";
/// Gauge: connections being served (at most `connections_max`).
pub const HTTP_CONNECTIONS_OPEN: &str = "kataar_http_connections_open";
/// Counter: connections refused at the `connections_max` cap, label `how` (`answered`: a fast
/// `503`; `per_client`: a fast `429` at `connections_per_client_max`; `closed`: closed at once
/// because too many refusals were already in flight).
pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "kataar_http_connections_refused_total";
/// Counter: connections the server closed on a timer, label `reason` (`header_timeout`, `idle`,
/// `evicted` (idle while the server is near `connections_max`), `shutdown_forced`).
pub const HTTP_CONNECTIONS_CLOSED_TOTAL: &str = "kataar_http_connections_closed_total";

/// Counter: requests whose body did not arrive within `body_read_timeout_s`.
pub const HTTP_BODY_READ_TIMEOUTS_TOTAL: &str = "kataar_http_body_read_timeouts_total";

/// Buckets for [`HTTP_REQUEST_DURATION_SECONDS`]: 0.5 ms to 30 s (the request timeout default).
pub const HTTP_DURATION_BUCKETS_S: [f64; 16] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];

/// Buckets for the store's batch-size histograms (`kataar_store_batch_events` and
/// `kataar_store_batch_bookings`, every histogram named with [`BATCH_SIZE_PREFIX`]): powers of
/// two from 1 to 4096 (the `batch_events_max` default).
pub const BATCH_SIZE_BUCKETS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The name prefix of the store's batch-size histograms.
pub const BATCH_SIZE_PREFIX: &str = "kataar_store_batch_";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder (once per process; later calls return the same handle).
///
/// If another recorder was installed first (a test harness, for instance), the returned handle
/// belongs to a recorder that is not installed and renders nothing; a warning is logged.
pub fn init_metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_owned()),
                        &HTTP_DURATION_BUCKETS_S,
                    )?
                    .set_buckets_for_metric(
                        Matcher::Prefix(BATCH_SIZE_PREFIX.to_owned()),
                        &BATCH_SIZE_BUCKETS,
                    )
            };
            let installed = builder().and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    handle
                }
                Err(err) => {
                    tracing::warn!(error = %err, "metrics recorder not installed");
                    let fallback = PrometheusBuilder::new().build_recorder();
                    fallback.handle()
                }
            }
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by route, method, status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request duration until the response head, by route and method."
    );
    describe_gauge!(HTTP_CONNECTIONS_OPEN, "HTTP connections being served.");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED_TOTAL,
        "Connections refused at the connections_max or connections_per_client_max cap."
    );
    describe_counter!(
        HTTP_CONNECTIONS_CLOSED_TOTAL,
        "Connections closed by a server timer."
    );
    describe_counter!(
        HTTP_BODY_READ_TIMEOUTS_TOTAL,
        "Requests whose body did not arrive within body_read_timeout_s."
    );
}

/// Bounded `method` label value.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
