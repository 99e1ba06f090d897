//! Connect Rust services to Azure Cache for Redis and Azure Managed Redis through the variables
//! Azure Service Connector injects, with Microsoft Entra ID tokens or access keys.
//!
//! Put `#[derive(AzureRedisConfig)]` on the application's configuration struct: its fields bind
//! to Service Connector's variables by name (`host` reads `AZURE_REDIS_HOST`, `client_id` reads
//! `AZURE_REDIS_CLIENTID`, ...), the chosen auth type is checked at compile time against the
//! fields, and every problem in the environment is reported at once at run time.
//!
//! ```
//! use azure_redis_connect::{AzureRedisConfig, Auth, SecretString};
//!
//! #[derive(AzureRedisConfig, Debug)]
//! #[azure_redis(auth = "service_principal")]
//! struct Cache {
//!     host: String,                 // AZURE_REDIS_HOST
//!     client_id: String,            // AZURE_REDIS_CLIENTID
//!     tenant_id: String,            // AZURE_REDIS_TENANTID
//!     client_secret: SecretString,  // AZURE_REDIS_CLIENTSECRET
//!     port: Option<u16>,            // AZURE_REDIS_PORT
//!     #[azure_redis(env = "LISTEN_ADDR", default = "0.0.0.0:8080")]
//!     listen: std::net::SocketAddr, // the app's own setting: any FromStr type
//! }
//!
//! let cache = Cache::from_vars([
//!     ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
//!     ("AZURE_REDIS_CLIENTID", "00000000-0000-0000-0000-0000000000c1"),
//!     ("AZURE_REDIS_TENANTID", "00000000-0000-0000-0000-0000000000t1"),
//!     ("AZURE_REDIS_CLIENTSECRET", "s3cr3t"),
//! ])?;
//! assert!(matches!(cache.auth()?, Auth::ServicePrincipal { .. }));
//! assert_eq!(cache.endpoint()?.port, 6380);
//! assert_eq!(cache.listen.port(), 8080);
//! // The secret never shows in Debug output:
//! assert!(!format!("{cache:?}").contains("s3cr3t"));
//! # Ok::<(), azure_redis_connect::ConfigError>(())
//! ```
//!
//! Missing or malformed variables come back as one [`ConfigError`] naming each variable:
//!
//! ```
//! # use azure_redis_connect::{AzureRedisConfig, SecretString};
//! # #[derive(AzureRedisConfig, Debug)]
//! # #[azure_redis(auth = "service_principal")]
//! # struct Cache { host: String, client_id: String, tenant_id: String,
//! #     client_secret: SecretString, port: Option<u16> }
//! let err = Cache::from_vars([("AZURE_REDIS_HOST", "h"), ("AZURE_REDIS_PORT", "x")]).unwrap_err();
//! assert_eq!(err.to_string(), "invalid configuration `Cache` (4 problems):
//!   - AZURE_REDIS_CLIENTID is not set (field `client_id` has no default)
//!   - AZURE_REDIS_TENANTID is not set (field `tenant_id` has no default)
//!   - AZURE_REDIS_CLIENTSECRET is not set (field `client_secret` has no default)
//!   - AZURE_REDIS_PORT=\"x\" is not a valid u16: invalid digit found in string");
//! ```
//!
//! # Connecting
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use azure_redis_connect::{AzureRedisConfig, redis::AsyncCommands};
//!
//! #[derive(AzureRedisConfig)]
//! #[azure_redis(auth(system_identity, developer_tools))]
//! struct Cache {
//!     host: String,
//!     port: Option<u16>,
//! }
//!
//! let mut redis = Cache::from_env()?.connect().await?;
//! let () = redis.set("greeting", "hello").await?;
//! println!("{:?}", redis.status()); // token expiry, last refresh, failures: for health checks
//! # Ok(()) }
//! ```
//!
//! [`AzureRedis`] refreshes the token before it expires, re-AUTHs the live connection with it,
//! and reconnects with the current token when the connection drops; see [`conn`].
//!
//! # Attributes
//!
//! On the struct, `#[azure_redis(...)]` takes:
//!
//! | key | meaning |
//! |---|---|
//! | `auth = "service_principal"` | the auth type; the fields it needs are checked at compile time |
//! | `auth(system_identity, developer_tools)` | a list: chosen at run time among exactly these (see [`config`] for the order) |
//! | *(no `auth`)* | detect at run time among the types the fields allow |
//! | `prefix = "AZURE_REDIS_SESSIONS_"` | the variables' prefix (default `AZURE_REDIS_`, `SPRING_REDIS_` for `spring_boot`) |
//! | `crate = "path"` | where this crate is, if renamed |
//!
//! Auth types: `system_identity`, `user_identity`, `service_principal`, `workload_identity`,
//! `developer_tools`, `access_key`, `connection_string` (either syntax) and `spring_boot`.
//!
//! On a field:
//!
//! | key | meaning |
//! |---|---|
//! | `env = "NAME"` | the variable to read (Service Connector's `--customized-keys`, or the app's own setting) |
//! | `role = "host"` | fill a setting from a field of another name |
//! | `default = 6380` / `default = "0.0.0.0:8080"` | used when the variable is unset; checked against the type where the macro can |
//! | `skip` | read nothing; `Default::default()` |
//!
//! A field named after a setting reads its variable: `host` (`HOST`, optionally `host:port`),
//! `port`, `database`, `ssl`, `client_id` (`CLIENTID`), `tenant_id` (`TENANTID`),
//! `client_secret` (`CLIENTSECRET`), `connection_string` (`CONNECTIONSTRING`), `password`,
//! `username` and `federated_token_file` (`AZURE_FEDERATED_TOKEN_FILE`, unprefixed). Any other
//! field needs `env` and a `FromStr` type. `Option<T>` makes a setting optional. Secrets
//! (`client_secret`, `password`, `connection_string`) must be [`SecretString`]: a plain
//! `String` is a compile error.
//!
//! With the `serde` feature the derive also implements `serde::Deserialize`, so that envy,
//! figment, config-rs, a nested section or a `#[serde(flatten)]` one produce the struct. The
//! map's keys are the variable names with or without the prefix (`AZURE_REDIS_HOST` or
//! `host`), in any case; other keys are skipped. Values may be strings, integers or bools; the
//! same resolution runs as in `from_env`, and the serde error's message is the whole
//! [`ConfigError`], every problem named by its variable, no secret shown. Do not derive
//! `Deserialize` on the same struct as well.
//!
//! A mistake is reported at compile time, at the span at fault:
//!
//! ```compile_fail
//! use azure_redis_connect::AzureRedisConfig;
//!
//! #[derive(AzureRedisConfig)]
//! #[azure_redis(auth = "service_principal")]
//! struct Cache {
//!     host: String,
//!     client_id: String,
//!     client_secret: String, // error: holds a secret; declare it as `SecretString`
//! }                          // error: `service_principal` needs `tenant_id: String`
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cluster;
pub mod config;
pub mod conn;
pub mod dedicated;
pub mod handle;
pub mod health;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(any(feature = "deadpool", feature = "bb8"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "deadpool", feature = "bb8"))))]
pub mod pool;
mod task;
mod telemetry;
pub mod token;
#[cfg(any(feature = "axum", feature = "actix-web"))]
pub mod web;

pub use config::{Auth, AuthKind, AzureRedisConfig, ConfigError, Endpoint};
pub use conn::{AzureRedis, ConnectError};
pub use redis;
pub use secrecy::{ExposeSecret, SecretString};

/// Derives [`AzureRedisConfig`](trait@AzureRedisConfig) for a struct with named fields.
///
/// See the [crate documentation](crate) for the attributes.
pub use azure_redis_connect_macros::AzureRedisConfig;

/// What the derive's generated code names; versioned with the crate's major and minor version
/// (the macros crate names the same), so that mismatched versions fail to compile.
#[doc(hidden)]
pub mod __private_0_1 {
    pub use crate::config::{
        AuthKind, AzureRedisConfig, ConfigError, ConfigSpec, Reader, Role, RoleValue, Settings,
        VarSource, Variable,
    };
    pub use core::option::Option::{self, None, Some};
    pub use core::result::Result;
    pub use secrecy::SecretString;

    pub use crate::__private_serde_impl as serde_impl;
    #[cfg(feature = "serde")]
    pub use crate::config::deserialize::deserialize;
    #[cfg(feature = "serde")]
    pub use serde;
}
