//! Keys, values and problems of a configuration read through serde, with `serde_json` and
//! serde's own map deserializer as the loaders.

use serde::Deserialize;
use serde::de::value::{Error as ValueError, MapDeserializer};

use crate::SecretString;

#[derive(crate::AzureRedisConfig, Debug)]
#[azure_redis(crate = "crate", auth = "service_principal")]
struct Cache {
    host: String,
    client_id: String,
    tenant_id: String,
    client_secret: SecretString,
    port: Option<u16>,
    ssl: Option<bool>,
    #[azure_redis(env = "REQUEST_TIMEOUT_SECS", default = 1.5)]
    timeout: f64,
}

#[derive(crate::AzureRedisConfig, Debug)]
#[azure_redis(
    crate = "crate",
    auth = "user_identity",
    prefix = "AZURE_REDIS_SESSIONS_"
)]
struct Sessions {
    host: String,
    client_id: String,
}

fn json<C: for<'de> Deserialize<'de>>(text: &str) -> Result<C, String> {
    serde_json::from_str::<C>(text).map_err(|e| e.to_string())
}

const COMPLETE: &str = r#"{
    "host": "shop.redis.cache.windows.net",
    "ClientId": "cid",
    "AZURE_REDIS_TENANTID": "tid",
    "clientsecret": "s3cr3t"
}"#;

#[test]
fn keys_name_variables_in_full_or_after_the_prefix_in_any_case() {
    let cache: Cache = json(COMPLETE).unwrap();
    assert_eq!(cache.host, "shop.redis.cache.windows.net");
    assert_eq!(cache.client_id, "cid");
    assert_eq!(cache.tenant_id, "tid");
    assert_eq!(cache.port, None);
    assert_eq!(cache.timeout, 1.5);

    // A custom prefix is the one left out.
    let sessions: Sessions =
        json(r#"{"HOST": "s.redis.cache.windows.net", "clientid": "c"}"#).unwrap();
    assert_eq!(sessions.host, "s.redis.cache.windows.net");
    let error = json::<Sessions>(r#"{"sessions_host": "s", "clientid": "c"}"#).unwrap_err();
    assert!(
        error.contains("AZURE_REDIS_SESSIONS_HOST is not set"),
        "{error}"
    );
}

#[test]
fn a_full_name_wins_over_a_short_one_in_either_order() {
    for text in [
        r#"{"host": "short", "azure_redis_host": "full", "clientid": "c", "tenantid": "t", "clientsecret": "s"}"#,
        r#"{"azure_redis_host": "full", "host": "short", "clientid": "c", "tenantid": "t", "clientsecret": "s"}"#,
    ] {
        assert_eq!(json::<Cache>(text).unwrap().host, "full");
    }
}

#[test]
fn integers_bools_and_floats_become_the_variables_text() {
    let cache: Cache = json(
        r#"{"host": "h", "clientid": "c", "tenantid": "t", "clientsecret": "s",
            "port": 6380, "ssl": true, "request_timeout_secs": 2.0}"#,
    )
    .unwrap();
    assert_eq!(cache.port, Some(6380));
    assert_eq!(cache.ssl, Some(true));
    assert_eq!(cache.timeout, 2.0);

    // A float keeps its point, so an integer setting refuses it with the usual message.
    let error = json::<Cache>(
        r#"{"host": "h", "clientid": "c", "tenantid": "t", "clientsecret": "s", "port": 6380.0}"#,
    )
    .unwrap_err();
    assert!(
        error.starts_with(
            "invalid configuration `Cache`: AZURE_REDIS_PORT=\"6380.0\" is not a valid u16"
        ),
        "{error}"
    );

    // serde's own map deserializer hands over typed values as they are.
    let pairs = [
        ("host", "h".to_owned()),
        ("clientid", "c".to_owned()),
        ("tenantid", "t".to_owned()),
        ("clientsecret", "s".to_owned()),
    ];
    let cache =
        Cache::deserialize(MapDeserializer::<_, ValueError>::new(pairs.into_iter())).unwrap();
    assert_eq!(cache.tenant_id, "t");
}

#[test]
fn null_is_unset_and_unknown_keys_are_skipped_whatever_they_hold() {
    let cache: Cache = json(
        r#"{"host": "h", "clientid": "c", "tenantid": "t", "clientsecret": "s", "port": null,
            "server": {"listen": [1, 2, {"x": 1}]}, "PATH": "/bin"}"#,
    )
    .unwrap();
    assert_eq!(cache.port, None);
    // A null section (JSON `null`) is an empty one: every problem, as from no variables.
    let error = json::<Cache>("null").unwrap_err();
    assert!(
        error.starts_with("invalid configuration `Cache` (4 problems):"),
        "{error}"
    );
}

#[test]
fn a_map_or_a_sequence_under_a_variables_key_is_reported_with_the_other_problems() {
    let error = json::<Cache>(
        r#"{"host": {"name": "h"}, "clientsecret": ["s3cr3t"], "port": "x", "tenantid": "t"}"#,
    )
    .unwrap_err();
    assert_eq!(
        error,
        "invalid configuration `Cache` (4 problems):
  - AZURE_REDIS_HOST (key `host`) is a map: expected a string, a number or a bool
  - AZURE_REDIS_CLIENTID is not set (field `client_id` has no default)
  - AZURE_REDIS_CLIENTSECRET (key `clientsecret`) is a sequence: expected a string, a number or a bool
  - AZURE_REDIS_PORT=\"x\" is not a valid u16: invalid digit found in string"
    );
}

#[test]
fn a_section_that_is_not_a_map_is_refused_without_its_value() {
    for (text, found) in [
        (r#""rediss://:s3cr3t@h:6380""#, "a string"),
        ("[1]", "a sequence"),
        ("6380", "a number"),
        ("true", "a bool"),
    ] {
        let error = json::<Cache>(text).unwrap_err();
        assert!(
            error.starts_with(&format!(
                "invalid configuration `Cache`: expected a map of its variables, found {found}"
            )),
            "{error}"
        );
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}

#[derive(crate::AzureRedisConfig, Debug)]
#[azure_redis(crate = "crate", auth = "connection_string")]
struct Keyed {
    connection_string: SecretString,
}

#[test]
fn a_secret_stays_out_of_every_error() {
    for text in [
        r#"{"connectionstring": "h:6380,password=s3cr3t,ssl=maybe"}"#,
        r#"{"CONNECTIONSTRING": {"password": "s3cr3t"}}"#,
        r#"{"connectionstring": ["h:6380,password=s3cr3t"]}"#,
    ] {
        let error = json::<Keyed>(text).unwrap_err();
        assert!(error.contains("AZURE_REDIS_CONNECTIONSTRING"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}
