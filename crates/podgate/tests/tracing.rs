//! Traces over OTLP/HTTP: a local collector on loopback receives the server's spans, and one
//! request's trace runs from the HTTP span through the core service, the Docker driver and the
//! agent calls.

mod common;

use std::sync::{Arc, Mutex};

use common::{Opts, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use podgate_types::api::{CreateSandboxRequest, ExecRequest};
use prost::Message as _;

/// An OTLP/HTTP collector that keeps every span it is sent.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
            for rs in req.resource_spans {
                for ss in rs.scope_spans {
                    kept.lock().unwrap().extend(ss.spans);
                }
            }
            async { "" }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_the_collector_as_one_trace_per_request() {
    let (url, spans) = collector().await;
    let srv = Server::start_with(Opts { extra: vec!["--otlp-endpoint".into(), url], ..Default::default() });
    let c = srv.client();
    let sb = c
        .create(&CreateSandboxRequest { image: Some("podgate/busybox:test".into()), ..Default::default() })
        .await
        .unwrap();
    let exec = ExecRequest { argv: vec!["true".into()], ..Default::default() };
    c.exec(&sb.id, &exec).await.unwrap();

    let names = ["sandbox.create", "docker.create", "docker.start", "agent.call", "sandbox.exec"];
    common::eventually(30, "the spans at the collector", async || {
        let got = spans.lock().unwrap();
        names.iter().all(|n| got.iter().any(|s| s.name == *n))
    })
    .await;
    let got = spans.lock().unwrap().clone();
    let find = |name: &str| got.iter().find(|s| s.name == name).unwrap().clone();
    let create = find("sandbox.create");
    let http = got.iter().find(|s| s.span_id == create.parent_span_id).expect("sandbox.create has a parent span");
    assert_eq!(http.name, "http", "the HTTP request's span is the parent");
    for child in ["docker.create", "docker.start"] {
        assert_eq!(find(child).trace_id, create.trace_id, "{child} is in the create's trace");
    }
    let exec_span = find("sandbox.exec");
    let agent_calls: Vec<&Span> =
        got.iter().filter(|s| s.name == "agent.call" && s.trace_id == exec_span.trace_id).collect();
    assert!(!agent_calls.is_empty(), "the exec's agent call is in its trace");
    assert_ne!(exec_span.trace_id, create.trace_id, "one trace per request");
}
