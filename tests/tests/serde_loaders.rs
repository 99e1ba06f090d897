//! The derive's `Deserialize` (the runtime's `serde` feature) through the loaders applications
//! use: envy, figment, config-rs, a `.env` file through dotenvy then envy, and serde's
//! `flatten` and nested sections. Each must produce the struct from keys with or without the
//! prefix, in any case, with integer and bool values; each must report every problem at once,
//! in the words of `from_vars` (variables, not fields), and never show a secret.
//!
//! The `readme_*` tests hold the README's examples as they are written there.
//!
//! Tests that read the process environment run in a figment `Jail` that clears it first: the
//! jail holds a lock (they run one at a time) and restores the environment afterwards, and the
//! clearing keeps out what `dotenvy::dotenv()` sets, which the jail does not know of.

// figment's `Jail` takes closures returning `figment::Result`, whose error is large.
#![allow(clippy::result_large_err)]

use azure_redis_connect::{Auth, AzureRedisConfig, ExposeSecret, SecretString};
use figment::providers::{Env, Format, Toml};
use figment::{Figment, Jail};
use serde::Deserialize;

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "service_principal")]
struct Cache {
    host: String,
    client_id: String,
    tenant_id: String,
    client_secret: SecretString,
    port: Option<u16>,
    ssl: Option<bool>,
}

/// A connection string holds the access key: a secret the errors must keep out.
#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "connection_string")]
struct Keyed {
    connection_string: SecretString,
}

const SECRET: &str = "s3cr3t-k3y";
const CLIENT_ID: &str = "00000000-0000-0000-0000-0000000000c1";

/// A complete `Cache`, by full name, as Service Connector injects it.
const VARS: &[(&str, &str)] = &[
    ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
    ("AZURE_REDIS_CLIENTID", CLIENT_ID),
    (
        "AZURE_REDIS_TENANTID",
        "00000000-0000-0000-0000-0000000000f1",
    ),
    ("AZURE_REDIS_CLIENTSECRET", SECRET),
    ("AZURE_REDIS_PORT", "6390"),
    ("AZURE_REDIS_SSL", "False"),
];

/// Three problems (no client id, a port that is not a number, an ssl that is not a bool),
/// with the secret set.
const BAD: &[(&str, &str)] = &[
    ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
    (
        "AZURE_REDIS_TENANTID",
        "00000000-0000-0000-0000-0000000000f1",
    ),
    ("AZURE_REDIS_CLIENTSECRET", SECRET),
    ("AZURE_REDIS_PORT", "63x0"),
    ("AZURE_REDIS_SSL", "maybe"),
];

/// `BAD` as a TOML section, with keys after the prefix.
const BAD_TOML: &str = r#"
[redis]
host = "shop.redis.cache.windows.net"
tenantid = "00000000-0000-0000-0000-0000000000f1"
clientsecret = "s3cr3t-k3y"
port = "63x0"
ssl = "maybe"
"#;

/// A malformed connection string that carries the secret.
const BAD_KEYED: &[(&str, &str)] = &[(
    "AZURE_REDIS_CONNECTIONSTRING",
    "shop.redis.cache.windows.net:6380,password=s3cr3t-k3y,ssl=maybe",
)];

/// A complete `Cache` as TOML: keys in mixed case, with and without the prefix, an integer
/// port and a bool ssl.
const TOML: &str = r#"
[redis]
Host = "shop.redis.cache.windows.net"
AZURE_REDIS_CLIENTID = "00000000-0000-0000-0000-0000000000c1"
TenantId = "00000000-0000-0000-0000-0000000000f1"
clientsecret = "s3cr3t-k3y"
port = 6390
ssl = false
"#;

fn assert_complete(cache: &Cache) {
    assert_eq!(cache.host, "shop.redis.cache.windows.net");
    assert_eq!(cache.client_id, CLIENT_ID);
    assert_eq!(cache.tenant_id, "00000000-0000-0000-0000-0000000000f1");
    assert_eq!(cache.client_secret.expose_secret(), SECRET);
    assert_eq!(cache.port, Some(6390));
    assert_eq!(cache.ssl, Some(false));
    let endpoint = cache.endpoint().unwrap();
    assert_eq!((endpoint.port, endpoint.tls), (6390, false));
    assert!(matches!(
        cache.auth().unwrap(),
        Auth::ServicePrincipal { .. }
    ));
}

/// What `from_vars` says of the same variables: every loader must carry this message whole.
fn from_vars_error<C: AzureRedisConfig + std::fmt::Debug>(vars: &[(&str, &str)]) -> String {
    let message = C::from_vars(vars.iter().copied()).unwrap_err().to_string();
    assert!(message.contains("AZURE_REDIS_"), "{message}");
    assert!(!message.contains(SECRET), "{message}");
    message
}

/// `vars` set in a cleared environment.
fn set_all(jail: &mut Jail, vars: &[(&str, &str)]) {
    jail.clear_env();
    for (name, value) in vars {
        jail.set_env(name, value);
    }
}

/// `vars` in config-rs's `Environment` source, as from the process environment.
fn config_env(vars: &[(&str, &str)]) -> config::Environment {
    let vars = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config::Environment::with_prefix("AZURE_REDIS")
        .source(Some(vars))
        .try_parsing(true)
}

#[test]
fn envy_from_the_environment_with_and_without_the_prefix() {
    Jail::expect_with(|jail| {
        set_all(jail, VARS);
        jail.set_env("PATH", "/usr/bin");
        assert_complete(&envy::prefixed("AZURE_REDIS_").from_env::<Cache>().unwrap());
        assert_complete(&envy::from_env::<Cache>().unwrap());
        Ok(())
    });
}

#[test]
fn envy_reports_every_problem_naming_the_variables() {
    let expected = from_vars_error::<Cache>(BAD);
    let prefixed = envy::prefixed("AZURE_REDIS_")
        .from_iter::<_, Cache>(BAD.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .unwrap_err();
    assert_eq!(prefixed.to_string(), expected);
    let full = envy::from_iter::<_, Cache>(BAD.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .unwrap_err();
    assert_eq!(full.to_string(), expected);
    // envy alone would have named the field and stopped at the first problem. (The README
    // shows this message.)
    assert_eq!(
        expected,
        "invalid configuration `Cache` (3 problems):
  - AZURE_REDIS_CLIENTID is not set (field `client_id` has no default)
  - AZURE_REDIS_PORT=\"63x0\" is not a valid u16: invalid digit found in string
  - AZURE_REDIS_SSL=\"maybe\" is not a valid bool: provided string was not `true` or `false`"
    );
}

#[test]
fn figment_from_toml_and_from_the_environment() {
    let cache: Cache = Figment::from(Toml::string(TOML))
        .extract_inner("redis")
        .unwrap();
    assert_complete(&cache);
    Jail::expect_with(|jail| {
        set_all(jail, VARS);
        // figment parses `6390` to an integer and lowercases the keys.
        let cache: Cache = Figment::from(Env::prefixed("AZURE_REDIS_")).extract()?;
        assert_complete(&cache);
        let cache: Cache = Figment::from(Env::raw()).extract()?;
        assert_complete(&cache);
        Ok(())
    });
}

#[test]
fn figment_reports_every_problem_naming_the_variables() {
    let expected = from_vars_error::<Cache>(BAD);
    let error = Figment::from(Toml::string(BAD_TOML))
        .extract_inner::<Cache>("redis")
        .unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with(&expected), "{message}\n---\n{expected}");
    assert!(!message.contains(SECRET), "{message}");
}

#[test]
fn config_rs_from_the_environment_and_from_a_table() {
    let settings = config::Config::builder()
        .add_source(config_env(VARS))
        .build()
        .unwrap();
    assert_complete(&settings.try_deserialize::<Cache>().unwrap());

    let settings = config::Config::builder()
        .add_source(config::File::from_str(TOML, config::FileFormat::Toml))
        .build()
        .unwrap();
    assert_complete(&settings.get::<Cache>("redis").unwrap());
}

#[test]
fn config_rs_reports_every_problem_naming_the_variables() {
    let expected = from_vars_error::<Cache>(BAD);
    let settings = config::Config::builder()
        .add_source(config_env(BAD))
        .build()
        .unwrap();
    let message = settings.try_deserialize::<Cache>().unwrap_err().to_string();
    assert!(message.starts_with(&expected), "{message}\n---\n{expected}");

    let settings = config::Config::builder()
        .add_source(config::File::from_str(BAD_TOML, config::FileFormat::Toml))
        .build()
        .unwrap();
    let message = settings.get::<Cache>("redis").unwrap_err().to_string();
    assert!(message.starts_with(&expected), "{message}\n---\n{expected}");
    assert!(!message.contains(SECRET), "{message}");
}

/// An application's own settings with the cache's variables flattened in.
#[derive(Deserialize, Debug)]
struct FlatApp {
    listen: String,
    #[serde(flatten)]
    redis: Cache,
}

#[test]
fn a_flattened_section_picks_its_keys_among_all_the_others() {
    // envy hands the flattened section every variable the app did not take, PATH included.
    let mut vars: Vec<(String, String)> = VARS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.push(("LISTEN".into(), "0.0.0.0:8080".into()));
    vars.push(("PATH".into(), "/usr/bin".into()));
    let app: FlatApp = envy::from_iter(vars).unwrap();
    assert_eq!(app.listen, "0.0.0.0:8080");
    assert_complete(&app.redis);

    // figment: the other keys of the file, a nested table among them, are skipped.
    let toml = format!(
        "listen = \"0.0.0.0:8080\"\n{}\n[server]\nworkers = 4\n",
        TOML.replace("[redis]", "")
    );
    let app: FlatApp = Figment::from(Toml::string(&toml)).extract().unwrap();
    assert_complete(&app.redis);

    // Every problem, through the flattened section too.
    let mut bad: Vec<(String, String)> = BAD
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    bad.push(("LISTEN".into(), "0.0.0.0:8080".into()));
    let error = envy::from_iter::<_, FlatApp>(bad).unwrap_err();
    assert_eq!(error.to_string(), from_vars_error::<Cache>(BAD));
}

/// An application's settings with the cache as a section of its own.
#[derive(Deserialize, Debug)]
struct NestedApp {
    listen: String,
    redis: Cache,
}

#[test]
fn a_nested_section_through_figment_and_config_rs() {
    let toml = format!("listen = \"0.0.0.0:8080\"\n{TOML}");
    let app: NestedApp = Figment::from(Toml::string(&toml)).extract().unwrap();
    assert_eq!(app.listen, "0.0.0.0:8080");
    assert_complete(&app.redis);

    let settings = config::Config::builder()
        .add_source(config::File::from_str(&toml, config::FileFormat::Toml))
        .build()
        .unwrap();
    let app: NestedApp = settings.try_deserialize().unwrap();
    assert_complete(&app.redis);

    // A table under a variable's key is one more problem in the list, named by its key.
    let toml = format!(
        "listen = \"0.0.0.0:8080\"\n{}",
        BAD_TOML.replace(
            "host = \"shop.redis.cache.windows.net\"",
            "host = { name = \"shop\" }"
        )
    );
    let message = Figment::from(Toml::string(&toml))
        .extract::<NestedApp>()
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(
            "invalid configuration `Cache` (4 problems):
  - AZURE_REDIS_HOST (key `host`) is a map: expected a string, a number or a bool
  - AZURE_REDIS_CLIENTID is not set (field `client_id` has no default)"
        ),
        "{message}"
    );
}

#[test]
fn a_secret_is_in_no_error_of_any_loader() {
    let expected = from_vars_error::<Keyed>(BAD_KEYED);
    assert!(
        expected.contains("AZURE_REDIS_CONNECTIONSTRING"),
        "{expected}"
    );
    let mut messages = Vec::new();

    messages.push(
        envy::prefixed("AZURE_REDIS_")
            .from_iter::<_, Keyed>(
                BAD_KEYED
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .unwrap_err()
            .to_string(),
    );
    let toml = format!("[redis]\nconnectionstring = {:?}\n", BAD_KEYED[0].1);
    messages.push(
        Figment::from(Toml::string(&toml))
            .extract_inner::<Keyed>("redis")
            .unwrap_err()
            .to_string(),
    );
    let settings = config::Config::builder()
        .add_source(config_env(BAD_KEYED))
        .build()
        .unwrap();
    messages.push(settings.try_deserialize::<Keyed>().unwrap_err().to_string());
    for message in &messages {
        assert!(message.starts_with(&expected), "{message}\n---\n{expected}");
    }

    // The secret in a table, and a whole section that is the connection string.
    for toml in [
        format!("[redis]\nconnectionstring = {{ password = {SECRET:?} }}\n"),
        format!("redis = \"rediss://:{SECRET}@shop.redis.cache.windows.net:6380\"\n"),
    ] {
        messages.push(
            Figment::from(Toml::string(&toml))
                .extract_inner::<Keyed>("redis")
                .unwrap_err()
                .to_string(),
        );
        let settings = config::Config::builder()
            .add_source(config::File::from_str(&toml, config::FileFormat::Toml))
            .build()
            .unwrap();
        messages.push(settings.get::<Keyed>("redis").unwrap_err().to_string());
    }
    for message in &messages {
        assert!(message.contains("`Keyed`"), "{message}");
        assert!(!message.contains(SECRET), "{message}");
    }
}

#[test]
fn a_dotenv_file_through_dotenvy_then_envy() {
    // The file alone, without touching the process environment.
    let dir = std::env::temp_dir().join(format!("serde-loaders-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(".env");
    std::fs::write(&path, DOTENV).unwrap();
    let vars = dotenvy::from_path_iter(&path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let cache: Cache = envy::prefixed("AZURE_REDIS_").from_iter(vars).unwrap();
    assert_eq!(cache.port, Some(6380));
    assert_eq!(
        cache.client_secret.expose_secret(),
        "s3cr3t # not a comment"
    );
}

/// A `.env` file for local runs: quotes, a comment, an `export`.
const DOTENV: &str = r#"# Service Connector's names, for a local run against a dev cache
AZURE_REDIS_HOST=shop-dev.redis.cache.windows.net
export AZURE_REDIS_CLIENTID=00000000-0000-0000-0000-0000000000c1
AZURE_REDIS_TENANTID="00000000-0000-0000-0000-0000000000f1"
AZURE_REDIS_CLIENTSECRET='s3cr3t # not a comment'
AZURE_REDIS_PORT=6380
"#;

#[test]
fn readme_envy_and_dotenvy() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(".env", DOTENV)?;
        // A variable already set wins over the file.
        jail.set_env("AZURE_REDIS_HOST", "shop.redis.cache.windows.net");
        let cache = readme_envy().map_err(|e| e.to_string())?;
        assert_eq!(cache.host, "shop.redis.cache.windows.net");
        assert_eq!(cache.port, Some(6380));
        Ok(())
    });
}

fn readme_envy() -> Result<Cache, Box<dyn std::error::Error>> {
    // README: envy
    dotenvy::dotenv().ok(); // a `.env` file for local runs, if there is one
    let cache: Cache = envy::prefixed("AZURE_REDIS_").from_env()?; // keys `host`, `clientid`, ...
    let same: Cache = envy::from_env()?; // keys `azure_redis_host`, ...
    // README end
    assert_eq!(cache.host, same.host);
    Ok(cache)
}

/// The README's application configuration.
#[derive(Deserialize, Debug)]
struct AppConfig {
    listen: String,
    redis: Cache,
}

/// The README's `App.toml`.
const APP_TOML: &str = r#"
listen = "0.0.0.0:8080"

[redis]
host = "shop.redis.cache.windows.net"
port = 6380
ssl = true
"#;

#[test]
fn readme_figment() {
    Jail::expect_with(|jail| {
        set_all(jail, &VARS[1..4]); // the identity from the environment, the rest from the file
        jail.create_file("App.toml", APP_TOML)?;
        let (app, cache) = readme_figment_code()?;
        assert_eq!(app.listen, "0.0.0.0:8080");
        assert_eq!(app.redis.port, Some(6380));
        assert_eq!(cache.client_id, CLIENT_ID);
        assert_eq!(cache.ssl, Some(true));
        Ok(())
    });
}

fn readme_figment_code() -> Result<(AppConfig, Cache), figment::Error> {
    // README: figment
    let figment = Figment::new()
        .merge(Toml::file("App.toml"))
        .merge(Env::prefixed("AZURE_REDIS_").map(|key| format!("redis.{key}").into()));
    let app: AppConfig = figment.extract()?; // the whole file, `redis` a section of it
    let cache: Cache = figment.extract_inner("redis")?; // the section alone
    // README end
    Ok((app, cache))
}

#[test]
fn readme_config_rs() {
    Jail::expect_with(|jail| {
        set_all(jail, VARS);
        jail.create_file("App.toml", TOML)?;
        readme_config_rs_code().map_err(|e| e.to_string())?;
        Ok(())
    });
}

fn readme_config_rs_code() -> Result<(), config::ConfigError> {
    // README: config-rs
    let from_env: Cache = config::Config::builder()
        .add_source(config::Environment::with_prefix("AZURE_REDIS"))
        .build()?
        .try_deserialize()?;
    let from_file: Cache = config::Config::builder()
        .add_source(config::File::with_name("App"))
        .build()?
        .get("redis")?;
    // README end
    assert_eq!(from_env.port, Some(6390));
    assert_eq!(from_file.client_id, CLIENT_ID);
    Ok(())
}

/// The README's flattened configuration.
#[derive(Deserialize, Debug)]
struct FlatConfig {
    listen: String,
    #[serde(flatten)]
    redis: Cache,
}

#[test]
fn readme_flatten() {
    Jail::expect_with(|jail| {
        set_all(jail, VARS);
        jail.set_env("LISTEN", "0.0.0.0:8080");
        jail.set_env("PATH", "/usr/bin");
        let config = readme_flatten_code().map_err(|e| e.to_string())?;
        assert_eq!(config.listen, "0.0.0.0:8080");
        assert_complete(&config.redis);
        Ok(())
    });
}

fn readme_flatten_code() -> Result<FlatConfig, envy::Error> {
    // README: flatten
    let config: FlatConfig = envy::from_env()?; // LISTEN, and every AZURE_REDIS_* for `redis`
    // README end
    Ok(config)
}
