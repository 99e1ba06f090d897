//! The web integration in one process: the `AzureRedis` extractor with an application state of
//! its own (axum `FromRef`) and with each way actix-web can hold it, and the health handlers.

mod common;

use std::time::Duration;

use actix_web::{App, web};
use axum::extract::{FromRef, State};
use axum::routing::get;
use azure_redis_connect::redis::AsyncCommands;
use azure_redis_connect::{AzureRedis, AzureRedisConfig, SecretString};
use azure_redis_emulator::{Emulator, ServiceConnectorAuth};

#[derive(AzureRedisConfig)]
#[azure_redis(auth = "service_principal")]
struct Cache {
    host: String,
    port: Option<u16>,
    client_id: String,
    tenant_id: String,
    client_secret: SecretString,
}

/// A handle through the emulator's service principal, configured in-process (no environment).
async fn connect(emu: &Emulator) -> AzureRedis {
    let cache =
        Cache::from_vars(emu.env_for(ServiceConnectorAuth::ServicePrincipal)).expect("config");
    AzureRedis::builder_from(&cache)
        .expect("builder")
        .root_certificate_pem(emu.ca_pem())
        .authority_host(emu.token_endpoint_authority())
        .connect()
        .await
        .expect("connects")
}

#[derive(Clone, FromRef)]
struct AppState {
    redis: AzureRedis,
    greeting: &'static str,
}

async fn greet(State(greeting): State<&'static str>, mut redis: AzureRedis) -> String {
    let n: i64 = redis.incr("greetings", 1).await.unwrap_or(-1);
    format!("{greeting} #{n}")
}

async fn greet_with_state(State(mut redis): State<AzureRedis>) -> String {
    let n: i64 = redis.incr("greetings", 1).await.unwrap_or(-1);
    format!("state #{n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_extracts_the_handle_from_any_state() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let emu = common::emulator(Duration::from_secs(60)).await;
        let redis = connect(&emu).await;
        let with_app_state = axum::Router::new()
            .route("/greet", get(greet))
            .route("/health", get(azure_redis_connect::web::axum::health))
            .with_state(AppState {
                redis: redis.clone(),
                greeting: "hello",
            });
        let with_handle = axum::Router::new()
            .route("/greet", get(greet_with_state))
            .route("/health", get(azure_redis_connect::web::axum::health))
            .with_state(redis.clone());
        let mut servers = tokio::task::JoinSet::new();
        let mut addrs = Vec::new();
        for app in [with_app_state, with_handle] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(listener.local_addr().unwrap().to_string());
            servers.spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        let r = common::request(&addrs[0], "GET", "/greet", &[])
            .await
            .unwrap();
        assert_eq!(r.body, "hello #1");
        let r = common::request(&addrs[1], "GET", "/greet", &[])
            .await
            .unwrap();
        assert_eq!(r.body, "state #2");
        for addr in &addrs {
            let r = common::request(addr, "GET", "/health", &[]).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.json()["status"], "ok");
            common::assert_no_secret(&r.body, &emu, ServiceConnectorAuth::ServicePrincipal);
        }
        servers.abort_all();
        while servers.join_next().await.is_some() {}
        drop(redis);
        emu.shutdown().await;
    })
    .await
    .expect("test timed out");
}

async fn actix_greet(mut redis: AzureRedis) -> String {
    let n: i64 = redis.incr("actix-greetings", 1).await.unwrap_or(-1);
    n.to_string()
}

#[actix_web::test]
async fn actix_extracts_the_handle_however_it_is_registered() {
    use actix_web::test::{TestRequest, call_service, init_service, read_body};

    tokio::time::timeout(Duration::from_secs(60), async {
        let emu = common::emulator(Duration::from_secs(60)).await;
        let redis = connect(&emu).await;

        macro_rules! check {
            ($app:expr, $expected:expr) => {{
                let app = init_service($app.route("/greet", web::get().to(actix_greet)).route(
                    "/health",
                    web::get().to(azure_redis_connect::web::actix::health),
                ))
                .await;
                let response =
                    call_service(&app, TestRequest::get().uri("/greet").to_request()).await;
                assert_eq!(response.status(), 200);
                assert_eq!(read_body(response).await, $expected);
                let response =
                    call_service(&app, TestRequest::get().uri("/health").to_request()).await;
                assert_eq!(response.status(), 200);
                assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
                let body = read_body(response).await;
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(json["healthy"], true, "{json}");
            }};
        }
        check!(App::new().app_data(web::ThinData(redis.clone())), "1");
        check!(App::new().app_data(web::Data::new(redis.clone())), "2");
        check!(App::new().app_data(redis.clone()), "3");

        // Not registered: 500, and no panic.
        let app = init_service(App::new().route(
            "/health",
            web::get().to(azure_redis_connect::web::actix::health),
        ))
        .await;
        let response = call_service(&app, TestRequest::get().uri("/health").to_request()).await;
        assert_eq!(response.status(), 500);

        drop(redis);
        emu.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// A cluster handle through the cluster emulator's service principal.
async fn connect_cluster(
    cluster: &azure_redis_emulator::ClusterEmulator,
) -> azure_redis_connect::cluster::AzureRedisCluster {
    let (sp, secret) = cluster.identity().default_service_principal();
    let auth = azure_redis_connect::Auth::ServicePrincipal {
        tenant_id: sp.tenant_id.clone(),
        client_id: sp.client_id.clone(),
        client_secret: secret.clone(),
    };
    let mut endpoint = azure_redis_connect::Endpoint::new("localhost");
    endpoint.port = cluster.seed_addr().port();
    azure_redis_connect::cluster::AzureRedisCluster::builder(endpoint, auth)
        .root_certificate_pem(cluster.identity().ca_pem())
        .authority_host(cluster.identity().token_endpoint_authority())
        .connect()
        .await
        .expect("connects to the cluster")
}

#[actix_web::test]
async fn cluster_health_pings_every_primary_in_both_frameworks() {
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    use azure_redis_connect::web::{actix, axum as ax};

    tokio::time::timeout(Duration::from_secs(90), async {
        let cluster = azure_redis_emulator::ClusterEmulator::builder()
            .emulator(Emulator::builder().token_lifetime(Duration::from_secs(60)))
            .start()
            .await
            .expect("the cluster starts");
        let handle = connect_cluster(&cluster).await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let router = axum::Router::new()
            .route("/health", get(ax::cluster_health))
            .with_state(handle.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let actix_app = init_service(
            App::new()
                .app_data(web::ThinData(handle.clone()))
                .route("/health", web::get().to(actix::cluster_health)),
        )
        .await;

        let r = common::request(&addr, "GET", "/health", &[]).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["status"], "ok");
        assert!(r.json()["ping_ms"].is_number(), "{}", r.body);
        let response =
            call_service(&actix_app, TestRequest::get().uri("/health").to_request()).await;
        assert_eq!(response.status(), 200);

        // One primary stops answering: the cluster is not healthy, in either framework.
        cluster
            .node_faults(1)
            .expect("node 1")
            .stall_gate(Duration::from_secs(6));
        // The last result is shared for the health cache period; a check after it PINGs again.
        tokio::time::sleep(
            azure_redis_connect::handle::DEFAULT_HEALTH_CACHE + Duration::from_millis(100),
        )
        .await;
        let r = common::request(&addr, "GET", "/health", &[]).await.unwrap();
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.json()["status"], "unavailable");
        let response =
            call_service(&actix_app, TestRequest::get().uri("/health").to_request()).await;
        assert_eq!(response.status(), 503);
        let body = read_body(response).await;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            json["reasons"][0]
                .as_str()
                .unwrap_or_default()
                .starts_with("PING"),
            "{json}"
        );
        for text in [r.body.as_str(), std::str::from_utf8(&body).unwrap()] {
            let secret = cluster.identity().default_service_principal().1;
            assert!(!text.contains(azure_redis_connect::ExposeSecret::expose_secret(secret)));
        }

        server.abort();
        let _ = server.await;
        drop(actix_app);
        drop(handle);
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
