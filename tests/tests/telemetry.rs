//! The spans the handle emits for what it does besides commands, with OpenTelemetry's field
//! names: the first connection, token fetches, re-AUTHs, a reconnect, and the `error.type` of a
//! failed token fetch. One test in this binary: it installs the process's global subscriber,
//! since the spans open on the handle's own tasks.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_redis_connect::redis::AsyncCommands;
use azure_redis_connect::token::TokenEvent;
use azure_redis_emulator::{IdentityEndpoint, IdentityFault, ServiceConnectorAuth};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

mod common;

use common::{bounded, builder, emulator};

/// A closed span: its name and fields.
#[derive(Clone, Debug)]
struct Closed {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Keeps every span's fields and hands the span over when it closes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Closed>>>);

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let fields = span.extensions_mut().remove::<Fields>().unwrap_or_default();
            self.0.lock().unwrap().push(Closed {
                name: span.name(),
                fields: fields.0,
            });
        }
    }
}

impl Capture {
    fn named(&self, name: &str) -> Vec<Closed> {
        let spans = self.0.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_token_fetch_reauth_and_reconnect_have_spans_with_opentelemetry_fields() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .expect("the only subscriber of this binary");
    bounded(Duration::from_secs(90), async {
        let emu = emulator(Duration::from_secs(3)).await;
        let mut redis = builder(&emu, ServiceConnectorAuth::ServicePrincipal)
            .connect()
            .await
            .expect("connects");
        let port = emu.tls_addr().port().to_string();
        let mut events = redis.token_provider().events();

        // A refresh, re-AUTHed on the live connection.
        let before = redis.status().reauths;
        while redis.status().reauths == before {
            events.recv().await.expect("token events");
        }
        // A failed refresh: the identity endpoint answers 500 once.
        emu.faults()
            .identity_outage(IdentityEndpoint::All, IdentityFault::Http500, None);
        loop {
            if let TokenEvent::Failed { .. } = events.recv().await.expect("token events") {
                break;
            }
        }
        emu.faults().clear_identity_outage(IdentityEndpoint::All);
        // A reconnect: the gate drops every connection.
        let reconnects = redis.status().reconnects;
        emu.faults().drop_all_connections();
        while redis.status().reconnects == reconnects {
            let _ = redis.get::<_, Option<String>>("telemetry:probe").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        for name in ["redis.connect", "redis.reauth", "redis.reconnect"] {
            let spans = capture.named(name);
            assert!(!spans.is_empty(), "no {name} span");
            for span in &spans {
                let f = &span.fields;
                assert_eq!(
                    f.get("db.system.name").map(String::as_str),
                    Some("redis"),
                    "{span:?}"
                );
                assert!(f.contains_key("server.address"), "{span:?}");
                assert_eq!(f.get("server.port"), Some(&port), "{span:?}");
            }
        }
        let connect = &capture.named("redis.connect")[0];
        assert!(!connect.fields.contains_key("error.type"), "{connect:?}");
        let fetches = capture.named("azure_redis.token.fetch");
        assert!(fetches.len() >= 3, "{fetches:?}");
        let failed: Vec<_> = fetches
            .iter()
            .filter_map(|s| s.fields.get("error.type"))
            .collect();
        assert!(!failed.is_empty(), "{fetches:?}");
        assert!(failed.iter().all(|t| *t == "refused"), "{fetches:?}");
        emu.shutdown().await;
    })
    .await;
}
