//! Prometheus metrics (docs/metrics.md): the `metrics` facade with the
//! Prometheus exporter as recorder, rendered by our own `/metrics` endpoint.
//! Counters are recorded where things happen; gauges that describe state
//! (cache sizes, trust generations, certificate expiry) are refreshed just
//! before each scrape.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::overload::Dropped;
use crate::tcp::CloseReason;
use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Latency buckets: 0.5 ms … 5 s, resolving 1 ms and the devices' 3 s retry.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0,
];

/// Installs the global recorder (once per process).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".into()),
            &LATENCY_BUCKETS,
        )
        .context("metric buckets")?
        .set_buckets_for_metric(
            Matcher::Full("pktc_queue_delay_seconds".into()),
            &LATENCY_BUCKETS,
        )
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    metrics::gauge!(
        "pktc_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "openssl" => openssl::version::version(),
    )
    .set(1.0);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!("pktc_start_time_seconds").set(start.as_secs_f64());
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "pktc_requests_total",
        "Kerberos requests received and answered"
    );
    describe_counter!(
        "pktc_replies_total",
        "Kerberos replies by exchange, PKINIT form, outcome and KRB-ERROR code (0 = ticket)"
    );
    describe_histogram!(
        "pktc_request_duration_seconds",
        Unit::Seconds,
        "Receipt to reply sent"
    );
    describe_counter!(
        "pktc_pkinit_rejections_total",
        "Refused PKINIT requests by audit reason"
    );
    describe_counter!(
        "pktc_lookaside_hits_total",
        "Retransmits answered from the lookaside cache"
    );
    describe_counter!(
        "pktc_shed_total",
        "Requests refused with KDC_ERR_SVC_UNAVAILABLE before public-key work or lookup"
    );
    describe_counter!(
        "pktc_rate_limited_total",
        "AS/PKINIT requests over a token bucket"
    );
    describe_counter!(
        "pktc_udp_too_big_total",
        "UDP replies replaced by KRB_ERR_RESPONSE_TOO_BIG"
    );
    describe_gauge!("pktc_tcp_connections", "Open Kerberos TCP connections");
    describe_counter!(
        "pktc_tcp_rejected_total",
        "Kerberos TCP connections reset at accept: every slot busy (slots), or PKINIT requests backlogged (backlog)"
    );
    describe_counter!(
        "pktc_tcp_unregistered_total",
        "Kerberos TCP connections whose first PKINIT request was read before registration with the reactor"
    );
    describe_counter!(
        "pktc_tcp_evicted_total",
        "Idle Kerberos TCP connections closed to make room for a new one"
    );
    describe_counter!(
        "pktc_tcp_closed_total",
        "Kerberos TCP connections closed by a bound (lifetime, frame timeout, idle, write timeout, invalid frame)"
    );
    describe_counter!(
        "pktc_requests_dropped_total",
        "Requests read and left unanswered on purpose (waited past the budget, no room, retransmission in progress, busy)"
    );
    describe_gauge!(
        "pktc_requests_waiting",
        "PKINIT requests read and waiting for a serving thread"
    );
    describe_histogram!(
        "pktc_queue_delay_seconds",
        Unit::Seconds,
        "PKINIT requests: kernel receive time to the start of their work"
    );
    describe_counter!(
        "pktc_certboot_connections_evicted_total",
        "Idle certificate-bootstrapping connections closed to make room for a new one"
    );
    describe_gauge!(
        "pktc_cpu_pool_queue_depth",
        "Admitted PKINIT requests waiting for their serving thread"
    );
    describe_gauge!(
        "pktc_cpu_pool_threads",
        "Threads doing public-key work (the serving threads)"
    );
    describe_counter!(
        "pktc_mps_lookups_total",
        "pkt-eue-7 device lookups by outcome"
    );
    describe_histogram!(
        "pktc_mps_lookup_duration_seconds",
        Unit::Seconds,
        "Lookups that asked the provisioning server"
    );
    describe_counter!(
        "pktc_mps_rechecks_total",
        "Cached answers that would refuse a device, by what the re-check did"
    );
    describe_counter!(
        "pktc_mps_cache_rejected_total",
        "Shared-cache values in Redis ignored because they fail their check"
    );
    describe_gauge!("pktc_cache_entries", "Entries held by each cache");
    describe_counter!("pktc_cache_lookups_total", "Cache lookups by result");
    describe_counter!(
        "pktc_certboot_handshakes_total",
        "Certificate-bootstrapping TLS handshakes"
    );
    describe_counter!(
        "pktc_certboot_requests_total",
        "Certificate-bootstrapping HTTP requests"
    );
    describe_counter!(
        "pktc_certboot_connections_rejected_total",
        "Certificate-bootstrapping connections closed at accept"
    );
    describe_gauge!("pktc_trust_generation", "Trust store generation in use");
    describe_gauge!(
        "pktc_trust_load_duration_seconds",
        Unit::Seconds,
        "Duration of the last successful trust load"
    );
    describe_gauge!(
        "pktc_trust_loaded_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful trust load"
    );
    describe_counter!("pktc_reloads_total", "Reload attempts by what and result");
    describe_gauge!(
        "pktc_reload_failed",
        "1 while the last reload attempt failed (old state in use)"
    );
    describe_gauge!("pktc_redis_up", "1 if the last Redis command succeeded");
    describe_counter!(
        "pktc_redis_errors_total",
        "Failed or timed-out Redis commands"
    );
    describe_gauge!("pktc_build_info", "Build information (always 1)");
    describe_gauge!(
        "pktc_start_time_seconds",
        Unit::Seconds,
        "Unix time the process started"
    );
}

/// The KRB-ERROR code as a label value (a fixed set of static strings).
pub fn code_label(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|c| DIGITS.get(c))
        .copied()
        .unwrap_or("other")
}

const DIGITS: [&str; 100] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64",
    "65", "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79", "80",
    "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96",
    "97", "98", "99",
];

/// Registers the series that would otherwise appear only after their first
/// event, so dashboards and alert rules see zeros instead of gaps.
pub fn init_series(cfg: &crate::config::Config) {
    for name in [
        "pktc_lookaside_hits_total",
        "pktc_udp_too_big_total",
        "pktc_tcp_unregistered_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for reason in ["slots", "backlog"] {
        metrics::counter!("pktc_tcp_rejected_total", "reason" => reason).increment(0);
    }
    metrics::gauge!("pktc_tcp_connections").set(0.0);
    for reason in ["cpu_pool", "mps_in_flight"] {
        metrics::counter!("pktc_shed_total", "reason" => reason).increment(0);
    }
    for scope in ["source", "global"] {
        metrics::counter!("pktc_rate_limited_total", "scope" => scope).increment(0);
    }
    for transport in ["udp", "tcp"] {
        for reason in Dropped::ALL {
            metrics::counter!(
                "pktc_requests_dropped_total", "transport" => transport, "reason" => reason.label()
            )
            .increment(0);
        }
    }
    metrics::counter!("pktc_tcp_evicted_total", "reason" => "oldest_idle").increment(0);
    for reason in CloseReason::ALL {
        metrics::counter!("pktc_tcp_closed_total", "reason" => reason.label()).increment(0);
    }
    let mut reloadable = vec![];
    if cfg.pkinit.is_some() {
        reloadable.extend(["device_trust", "kdc_identity"]);
    }
    if cfg.pkinit.is_some() {
        // The common refusals; the others appear with their first event.
        for reason in [
            "cert_unknown_issuer",
            "cert_expired",
            "cert_revoked",
            "pkinit_skew",
            "device_unknown_mac",
            "device_fqdn_mismatch",
        ] {
            metrics::counter!("pktc_pkinit_rejections_total", "reason" => reason).increment(0);
        }
    }
    if cfg.certboot.is_some() {
        for reason in ["too_many_connections", "rate_limited"] {
            metrics::counter!("pktc_certboot_connections_rejected_total", "reason" => reason)
                .increment(0);
        }
        metrics::counter!("pktc_certboot_connections_evicted_total", "reason" => "oldest_idle")
            .increment(0);
        for (status, reason) in [
            ("200", "profile_served"),
            ("404", "unknown_device"),
            ("503", "store_error"),
        ] {
            metrics::counter!("pktc_certboot_requests_total", "status" => status, "reason" => reason)
                .increment(0);
        }
        reloadable.extend(["certboot_identity", "certboot_credentials"]);
    }
    for what in reloadable {
        for result in ["ok", "error"] {
            metrics::counter!("pktc_reloads_total", "what" => what, "result" => result)
                .increment(0);
        }
        metrics::gauge!("pktc_reload_failed", "what" => what).set(0.0);
    }
    if cfg.mps.is_some() {
        for outcome in [
            "hit",
            "miss",
            "mismatch_fqdn",
            "mismatch_addr",
            "unknown_mac",
            "mps_error",
            "timeout",
        ] {
            metrics::counter!("pktc_mps_lookups_total", "outcome" => outcome).increment(0);
        }
        // Registered without a sample: rendered with zero counts.
        let _ = metrics::histogram!("pktc_mps_lookup_duration_seconds");
        for outcome in ["accepted", "refused", "suppressed", "failed"] {
            metrics::counter!("pktc_mps_rechecks_total", "outcome" => outcome).increment(0);
        }
    }
    if cfg.mps.as_ref().is_some_and(|m| m.redis.is_some()) {
        metrics::gauge!("pktc_redis_up", "use" => "mps_cache").set(0.0);
        metrics::counter!("pktc_redis_errors_total", "use" => "mps_cache").increment(0);
        for reason in ["malformed", "unauthenticated", "expired"] {
            metrics::counter!("pktc_mps_cache_rejected_total", "reason" => reason).increment(0);
        }
    }
}

/// Records a reload attempt and its state.
pub fn reload(what: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!("pktc_reloads_total", "what" => what, "result" => result).increment(1);
    metrics::gauge!("pktc_reload_failed", "what" => what).set(if ok { 0.0 } else { 1.0 });
}

/// Counts and logs one refresh of a watched set of files (`Ok(false)`:
/// nothing changed). `subject` names it in the log ("KDC certificate"); a
/// failed refresh keeps what was loaded before, and the log says so.
pub fn report_refresh<E: std::fmt::Display>(
    what: &'static str,
    subject: &str,
    result: Result<bool, E>,
) {
    match result {
        Ok(true) => {
            reload(what, true);
            tracing::info!(what, "{subject} reloaded");
        }
        Ok(false) => {}
        Err(e) => {
            reload(what, false);
            tracing::error!(
                what,
                error = %format!("{e:#}"),
                "{subject} reload failed; keeping the version loaded before"
            );
        }
    }
}

/// Seconds from now until `unix` (negative when past).
pub fn seconds_until(unix: i64) -> f64 {
    let now = krb::msg::time::now().0;
    (unix.saturating_sub(now)) as f64
}

/// Serves `GET /metrics` on `listener`; `refresh` updates state gauges
/// before each render and returns series written by hand (appended).
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    refresh: Arc<dyn Fn() -> String + Send + Sync>,
) {
    let handle = Arc::new(handle);
    // Histogram upkeep (the exporter drains recent samples on render;
    // between scrapes this keeps memory bounded).
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    // Scrapers are few: a bounded number of connections, the rest closed.
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (handle, refresh) = (handle.clone(), refresh.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (handle, refresh) = (handle.clone(), refresh.clone());
                async move {
                    let mut resp = if req.method() == Method::GET && req.uri().path() == "/metrics"
                    {
                        // Reading trust stores and caches is cheap but not free:
                        // off the async workers.
                        let text = tokio::task::spawn_blocking(move || {
                            let extra = refresh();
                            handle.render() + &extra
                        })
                        .await
                        .unwrap_or_default();
                        let mut r = Response::new(Full::new(Bytes::from(text)));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    };
                    resp.headers_mut().insert(
                        hyper::header::CACHE_CONTROL,
                        hyper::header::HeaderValue::from_static("no-store"),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_labels() {
        assert_eq!(code_label(0), "0");
        assert_eq!(code_label(37), "37");
        assert_eq!(code_label(99), "99");
        assert_eq!(code_label(100), "other");
        assert_eq!(code_label(-1), "other");
    }
}
