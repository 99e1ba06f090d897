//! The refresh loop against a scripted token source.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;

use super::*;

/// Mints JWT-shaped tokens of a fixed lifetime; can fail, or repeat its last token.
struct Scripted {
    lifetime: Duration,
    minted: AtomicU64,
    requests: AtomicU64,
    failing: AtomicBool,
    repeat: AtomicBool,
    oid: Option<&'static str>,
    last: Mutex<Option<AccessToken>>,
}

impl Scripted {
    fn new(lifetime_ms: u64) -> Arc<Scripted> {
        Arc::new(Scripted {
            lifetime: Duration::from_millis(lifetime_ms),
            minted: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            repeat: AtomicBool::new(false),
            oid: Some("object-id-1"),
            last: Mutex::new(None),
        })
    }
}

impl TokenSource for Arc<Scripted> {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            self.requests.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(TokenError::Credential {
                    source_name: "scripted".into(),
                    message: "identity endpoint down".into(),
                });
            }
            let mut last = self.last.lock().unwrap();
            if self.repeat.load(Ordering::SeqCst)
                && let Some(token) = last.clone()
            {
                return Ok(token);
            }
            let n = self.minted.fetch_add(1, Ordering::SeqCst);
            let claims = match self.oid {
                Some(oid) => format!(r#"{{"oid":"{oid}","n":{n}}}"#),
                None => format!(r#"{{"n":{n}}}"#),
            };
            let token = AccessToken {
                token: format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims)).into(),
                expires_at: Some(SystemTime::now() + self.lifetime),
            };
            *last = Some(token.clone());
            Ok(token)
        })
    }
}

fn fast_policy() -> RefreshPolicy {
    RefreshPolicy {
        initial_backoff: Duration::from_millis(20),
        request_timeout: Duration::from_secs(2),
        ..RefreshPolicy::default()
    }
}

async fn wait_for_generation(provider: &TokenProvider, generation: u64) -> Arc<Credentials> {
    let mut rx = provider.subscribe();
    let wait = rx.wait_for(|c| c.generation >= generation);
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("no new token within 10 s")
        .map(|c| Arc::clone(&c))
        .expect("provider dropped")
}

#[tokio::test]
async fn refreshes_about_once_per_ratio_of_the_lifetime() {
    let source = Scripted::new(400);
    let provider = TokenProvider::start(Arc::clone(&source), fast_policy(), None)
        .await
        .unwrap();
    assert_eq!(provider.current().username.as_deref(), Some("object-id-1"));
    let credentials = wait_for_generation(&provider, 5).await;
    assert_eq!(credentials.generation, 5);
    let requests = source.requests.load(Ordering::SeqCst);
    // One request per token: not a loop.
    assert!(
        (5..=6).contains(&requests),
        "{requests} requests for 5 tokens"
    );
    assert_eq!(provider.status().consecutive_failures, 0);
}

#[tokio::test]
async fn never_gives_up_also_past_expiry() {
    let source = Scripted::new(300);
    let provider = TokenProvider::start(Arc::clone(&source), fast_policy(), None)
        .await
        .unwrap();
    let mut events = provider.events();
    source.failing.store(true, Ordering::SeqCst);
    // Fail well past the expiry of the token in use.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let status = provider.status();
    assert!(status.is_expired(), "{status:?}");
    assert!(status.consecutive_failures >= 3, "{status:?}");
    assert_eq!(
        status.last_error.as_deref(),
        Some("scripted could not get a token: identity endpoint down")
    );
    assert_eq!(provider.current().generation, 1);
    source.failing.store(false, Ordering::SeqCst);
    let credentials = wait_for_generation(&provider, 2).await;
    assert!(credentials.expires_at.unwrap() > SystemTime::now());
    assert_eq!(provider.status().consecutive_failures, 0);
    let mut failed = 0;
    while let Ok(event) = events.try_recv() {
        if let TokenEvent::Failed { .. } = event {
            failed += 1;
        }
    }
    assert!(failed >= 3, "{failed} failure events");
}

#[tokio::test]
async fn an_unchanged_token_is_not_published_again() {
    let source = Scripted::new(300);
    let provider = TokenProvider::start(Arc::clone(&source), fast_policy(), None)
        .await
        .unwrap();
    source.repeat.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(provider.current().generation, 1);
    assert!(source.requests.load(Ordering::SeqCst) >= 2);
    source.repeat.store(false, Ordering::SeqCst);
    wait_for_generation(&provider, 2).await;
}

#[tokio::test]
async fn a_token_without_oid_is_a_clear_error_unless_a_username_is_given() {
    let source = Arc::new(Scripted {
        oid: None,
        ..Arc::into_inner(Scripted::new(60_000)).unwrap()
    });
    let error = TokenProvider::start(Arc::clone(&source), fast_policy(), None)
        .await
        .unwrap_err();
    assert!(matches!(error, TokenError::NoObjectId));
    assert!(error.to_string().contains("`oid` claim"));
    let provider = TokenProvider::start(source, fast_policy(), Some("explicit".into()))
        .await
        .unwrap();
    assert_eq!(provider.current().username.as_deref(), Some("explicit"));
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_refresh_task() {
    let source = Scripted::new(100);
    let provider = TokenProvider::start(Arc::clone(&source), fast_policy(), None)
        .await
        .unwrap();
    let clone = provider.clone();
    drop(provider);
    wait_for_generation(&clone, 3).await;
    drop(clone);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after_drop = source.requests.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(source.requests.load(Ordering::SeqCst), after_drop);
}

#[tokio::test]
async fn a_static_password_never_expires_and_keeps_its_user() {
    let provider = TokenProvider::start(
        StaticPassword::new(Some("app".into()), "k3y".into()),
        fast_policy(),
        None,
    )
    .await
    .unwrap();
    let credentials = provider.current();
    assert_eq!(credentials.username.as_deref(), Some("app"));
    assert_eq!(credentials.password.expose_secret(), "k3y");
    assert_eq!(credentials.expires_at, None);
    assert!(!format!("{credentials:?} {provider:?}").contains("k3y"));
}

#[tokio::test]
async fn a_slow_first_token_fails_with_its_own_timeout() {
    struct Slow;
    impl TokenSource for Slow {
        fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Err(TokenError::NotAJwt)
            })
        }
    }
    let policy = RefreshPolicy {
        request_timeout: Duration::from_millis(100),
        ..fast_policy()
    };
    let error = TokenProvider::start(Slow, policy, None).await.unwrap_err();
    assert!(matches!(error, TokenError::Timeout(_)), "{error}");
}

/// A paused clock: a 1-hour token is refreshed 45 minutes after it arrived.
#[tokio::test(start_paused = true)]
async fn a_one_hour_token_is_refreshed_at_45_minutes() {
    let source = Scripted::new(3_600_000);
    let started = tokio::time::Instant::now();
    let provider = TokenProvider::start(Arc::clone(&source), RefreshPolicy::default(), None)
        .await
        .unwrap();
    let mut rx = provider.subscribe();
    rx.wait_for(|c| c.generation >= 2).await.unwrap();
    let at = started.elapsed();
    // The source's expiry is on the system clock, which the paused clock does not move, so
    // the second token is again a full hour: the second refresh comes 45 minutes later.
    assert_eq!(at.as_secs(), 45 * 60, "{at:?}");
    assert_eq!(source.requests.load(Ordering::SeqCst), 2);
}

/// Once the token in use has expired, refreshes are retried about every second, whatever the
/// lifetime was.
#[tokio::test(start_paused = true)]
async fn after_expiry_refreshes_are_retried_every_second() {
    let source = Scripted::new(0);
    let provider = TokenProvider::start(Arc::clone(&source), RefreshPolicy::default(), None)
        .await
        .unwrap();
    source.failing.store(true, Ordering::SeqCst);
    let mut events = provider.events();
    let started = tokio::time::Instant::now();
    let mut at = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(TokenEvent::Failed { .. }) = events.recv().await {
            at.push(started.elapsed());
        }
    }
    let gaps: Vec<_> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(at.len() >= 59, "{} retries in 60 s", at.len());
    assert!(
        gaps.iter()
            .all(|g| *g >= Duration::from_millis(500) && *g <= Duration::from_secs(1)),
        "{gaps:?}"
    );
    source.failing.store(false, Ordering::SeqCst);
    let before = tokio::time::Instant::now();
    provider
        .subscribe()
        .wait_for(|c| c.generation >= 2)
        .await
        .unwrap();
    assert!(before.elapsed() <= Duration::from_secs(1));
}

/// The credential sources at the HTTP transport seam: what each request looks like, and that
/// azure_identity's token cache never answers a refresh.
mod transport {
    use std::sync::Mutex;

    use azure_core::http::headers::Headers;
    use azure_core::http::{AsyncRawResponse, HttpClient, Request, StatusCode, Transport};

    use super::*;
    use crate::config::Auth;
    use crate::token::source_with_transport;

    /// Answers every request with `status` and `body`, and records the URLs asked.
    #[derive(Debug)]
    struct Sts {
        status: StatusCode,
        body: String,
        urls: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl HttpClient for Sts {
        async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
            self.urls.lock().unwrap().push(request.url().to_string());
            Ok(AsyncRawResponse::from_bytes(
                self.status,
                Headers::default(),
                self.body.clone(),
            ))
        }
    }

    fn jwt(oid: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"oid":"{oid}","aud":"https://redis.azure.com"}}"#
        ));
        format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU")
    }

    fn sts(status: StatusCode, body: String) -> Arc<Sts> {
        Arc::new(Sts {
            status,
            body,
            urls: Mutex::new(Vec::new()),
        })
    }

    fn service_principal() -> Auth {
        Auth::ServicePrincipal {
            tenant_id: "00000000-0000-0000-0000-0000000000aa".into(),
            client_id: "00000000-0000-0000-0000-0000000000c1".into(),
            client_secret: "s3cr3t".into(),
        }
    }

    #[tokio::test]
    async fn two_fetches_of_a_one_hour_token_make_two_requests() {
        let body = format!(
            r#"{{"token_type":"Bearer","expires_in":3600,"access_token":"{}"}}"#,
            jwt("oid-1")
        );
        let sts = sts(StatusCode::Ok, body);
        let options = CredentialOptions::default();
        let source =
            source_with_transport(&service_principal(), &options, Transport::new(sts.clone()))
                .unwrap();
        let first = source.fetch().await.unwrap();
        let second = source.fetch().await.unwrap();
        assert_eq!(
            sts.urls.lock().unwrap().len(),
            2,
            "a cache answered the second fetch"
        );
        let lifetime = first
            .expires_at
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(lifetime > Duration::from_secs(3590), "{lifetime:?}");
        assert!(second.expires_at >= first.expires_at);
        let url = sts.urls.lock().unwrap()[0].clone();
        assert!(
            url.ends_with("/00000000-0000-0000-0000-0000000000aa/oauth2/v2.0/token"),
            "{url}"
        );
    }

    #[tokio::test]
    async fn an_error_body_holding_a_token_reaches_no_error_text() {
        let leaked = jwt("leaked-oid");
        // (Managed identity is left to the emulator's tests: without IDENTITY_ENDPOINT in the
        // environment azure_identity goes to IMDS, which it retries by itself for up to 72 s.)
        let token_file = std::env::temp_dir().join(format!("arc-test-{}.jwt", std::process::id()));
        std::fs::write(&token_file, jwt("federated")).unwrap();
        let workload = Auth::WorkloadIdentity {
            client_id: "00000000-0000-0000-0000-0000000000c2".into(),
            tenant_id: Some("00000000-0000-0000-0000-0000000000aa".into()),
            token_file: Some(token_file.clone()),
        };
        for (auth, status, body) in [
            (
                workload,
                StatusCode::InternalServerError,
                format!(r#"{{"access_token":"{leaked}","expires_in":3600}}"#),
            ),
            (
                service_principal(),
                StatusCode::Unauthorized,
                format!(
                    r#"{{"error":"invalid_client","error_codes":[7000215],"error_description":"bad {leaked}","access_token":"{leaked}"}}"#
                ),
            ),
        ] {
            let sts = sts(status, body);
            let source = source_with_transport(
                &auth,
                &CredentialOptions::default(),
                Transport::new(sts.clone()),
            )
            .unwrap();
            let error = source.fetch().await.unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(!text.contains(&leaked[..30]), "{text}");
            assert!(!text.contains("leaked-oid"), "{text}");
            assert!(matches!(error, TokenError::Refused { .. }), "{text}");
            assert!(
                text.contains(&format!("HTTP {}", u16::from(status))),
                "{text}"
            );
            assert!(text.contains("https://aka.ms/"), "{text}");
            if matches!(auth, Auth::ServicePrincipal { .. }) {
                assert!(text.contains("AADSTS7000215"), "{text}");
            }
        }
        let _ = std::fs::remove_file(token_file);
    }
}
