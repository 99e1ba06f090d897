//! Run-time behaviour of derived configurations: every problem reported at once, naming the
//! variable, and secrets never shown.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use azure_redis_connect::config::{Problem, VarSource};
use azure_redis_connect::{AzureRedisConfig, SecretString};

const SENTINEL: &str = "SENTINEL-7f3a9c";

#[derive(AzureRedisConfig, Debug)]
struct Everything {
    host: Option<String>,
    port: Option<u16>,
    database: Option<u32>,
    ssl: Option<bool>,
    client_id: Option<String>,
    tenant_id: Option<String>,
    client_secret: Option<SecretString>,
    password: Option<SecretString>,
    connection_string: Option<SecretString>,
    federated_token_file: Option<PathBuf>,
    #[azure_redis(env = "APP_API_KEY")]
    api_key: Option<SecretString>,
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

fn all_secret_vars(connection_string: String) -> Vec<(OsString, OsString)> {
    vec![
        (os("AZURE_REDIS_HOST"), os("shop.redis.cache.windows.net")),
        (os("AZURE_REDIS_CLIENTID"), os("client")),
        (os("AZURE_REDIS_TENANTID"), os("tenant")),
        (os("AZURE_REDIS_CLIENTSECRET"), os(SENTINEL)),
        (os("AZURE_REDIS_PASSWORD"), os(SENTINEL)),
        (os("AZURE_REDIS_CONNECTIONSTRING"), os(&connection_string)),
        (os("APP_API_KEY"), os(SENTINEL)),
    ]
}

#[test]
fn secrets_never_show_in_debug_display_or_errors() {
    let mut shown = Vec::new();

    // A configuration that resolves: the connection string wins the detection.
    let good = format!("shop.redis.cache.windows.net:6380,password={SENTINEL},ssl=True");
    let config = Everything::from_vars(all_secret_vars(good)).unwrap();
    let resolved = config.connection_config().unwrap();
    assert!(config.api_key.is_some());
    shown.push(format!("{config:?}"));
    shown.push(format!("{resolved:?}"));
    shown.push(format!(
        "{} {:?} {}",
        resolved.auth, resolved.auth, resolved.endpoint
    ));
    for variable in Everything::variables() {
        shown.push(format!("{variable} {variable:?}"));
    }
    let vars: VarSource = all_secret_vars(String::new()).into_iter().collect();
    shown.push(format!("{vars:?}"));

    // The service principal, from the same secrets.
    let mut sp = all_secret_vars(String::new());
    sp.retain(|(k, _)| k != "AZURE_REDIS_CONNECTIONSTRING" && k != "AZURE_REDIS_PASSWORD");
    let auth = Everything::from_vars(sp).unwrap().auth().unwrap();
    shown.push(format!("{auth} {auth:?}"));

    // Errors: a malformed connection string holding the secret, a secret that is not UTF-8,
    // and a secret type that fails to parse elsewhere.
    for bad in [
        format!("shop:6380,password={SENTINEL},ssl=maybe"),
        format!("rediss://:{SENTINEL}@shop:99999/0"),
        format!("http://:{SENTINEL}@shop"),
        format!("shop:6380,{SENTINEL}"),
        format!("rediss://:{SENTINEL}%zz@shop"),
        format!("shop:6380,ssl=True,{SENTINEL}=x"),
    ] {
        let error = Everything::from_vars(all_secret_vars(bad)).unwrap_err();
        shown.push(format!("{error} {error:?}"));
    }
    let mut not_utf8 = all_secret_vars(String::new());
    not_utf8.push((
        os("AZURE_REDIS_PORT"),
        OsString::from_vec(b"63\xff80".to_vec()),
    ));
    let mut bytes = SENTINEL.as_bytes().to_vec();
    bytes.push(0xff);
    not_utf8.retain(|(k, _)| k != "AZURE_REDIS_CLIENTSECRET");
    not_utf8.push((os("AZURE_REDIS_CLIENTSECRET"), OsString::from_vec(bytes)));
    let error = Everything::from_vars(not_utf8).unwrap_err();
    shown.push(format!("{error} {error:?}"));
    assert!(error.problems().contains(&Problem::NotUnicode {
        var: "AZURE_REDIS_CLIENTSECRET"
    }));
    assert!(error.problems().contains(&Problem::NotUnicode {
        var: "AZURE_REDIS_PORT"
    }));

    assert!(shown.len() > 10);
    for text in &shown {
        assert!(!text.contains(SENTINEL), "secret shown in: {text}");
    }
}

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "service_principal")]
struct Strict {
    host: String,
    client_id: String,
    tenant_id: String,
    client_secret: SecretString,
    port: Option<u16>,
    ssl: Option<bool>,
    #[azure_redis(env = "LISTEN_ADDR", default = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    #[azure_redis(env = "BAD_DEFAULT", default = "not an address")]
    fallback: std::net::SocketAddr,
}

#[test]
fn every_problem_is_reported_at_once() {
    let error = Strict::from_vars([
        ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
        ("AZURE_REDIS_PORT", "80000"),
        ("AZURE_REDIS_SSL", "sometimes"),
        ("LISTEN_ADDR", "localhost"),
    ])
    .unwrap_err();
    let vars: Vec<_> = error.problems().iter().map(|p| p.var()).collect();
    assert_eq!(
        vars,
        [
            Some("AZURE_REDIS_CLIENTID"),
            Some("AZURE_REDIS_TENANTID"),
            Some("AZURE_REDIS_CLIENTSECRET"),
            Some("AZURE_REDIS_PORT"),
            Some("AZURE_REDIS_SSL"),
            Some("LISTEN_ADDR"),
            None,
        ],
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with("invalid configuration `Strict` (7 problems):"),
        "{text}"
    );
    assert!(
        text.contains("AZURE_REDIS_PORT=\"80000\" is not a valid u16"),
        "{text}"
    );
    assert!(
        text.contains("AZURE_REDIS_SSL=\"sometimes\" is not a valid bool"),
        "{text}"
    );
    assert!(
        text.contains("LISTEN_ADDR=\"localhost\" is not a valid std::net::SocketAddr"),
        "{text}"
    );
    assert!(
        text.contains("the default of field `fallback` is not a valid std::net::SocketAddr"),
        "{text}"
    );
}

#[test]
fn values_are_trimmed_and_booleans_take_azure_spelling() {
    let config = Strict::from_vars([
        ("AZURE_REDIS_HOST", " localhost "),
        ("AZURE_REDIS_CLIENTID", "c"),
        ("AZURE_REDIS_TENANTID", "t"),
        ("AZURE_REDIS_CLIENTSECRET", "s"),
        ("AZURE_REDIS_PORT", "7000\n"),
        ("AZURE_REDIS_SSL", "False"),
        ("BAD_DEFAULT", "127.0.0.1:1"),
    ])
    .unwrap();
    assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.fallback, "127.0.0.1:1".parse().unwrap());
    let endpoint = config.endpoint().unwrap();
    assert_eq!(
        (endpoint.host.as_str(), endpoint.port, endpoint.tls),
        ("localhost", 7000, false)
    );
}

#[test]
fn variables_list_each_field_for_help_and_logs() {
    let lines: Vec<String> = Strict::variables()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "AZURE_REDIS_HOST  host: String",
            "AZURE_REDIS_CLIENTID  client_id: String",
            "AZURE_REDIS_TENANTID  tenant_id: String",
            "AZURE_REDIS_CLIENTSECRET  client_secret: SecretString (secret)",
            "AZURE_REDIS_PORT  port: u16 (optional)",
            "AZURE_REDIS_SSL  ssl: bool (optional)",
            "LISTEN_ADDR  listen: std::net::SocketAddr (default 0.0.0.0:8080)",
            "BAD_DEFAULT  fallback: std::net::SocketAddr (default not an address)",
        ]
    );
}
