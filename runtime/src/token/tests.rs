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
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + '_>> {
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
        fn fetch(
            &self,
        ) -> Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + '_>> {
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
