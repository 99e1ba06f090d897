//! Connection strings in the two syntaxes Service Connector writes.
//!
//! Errors give the byte position and what is wrong, never the text at fault, which may be a key
//! (the one exception is an unknown StackExchange option key that has the shape of a keyword, see
//! below).
//!
//! # StackExchange.Redis syntax
//!
//! `host:6380,password=KEY,ssl=True,defaultDatabase=0` (client type .NET). Options are split at
//! every `,` and each at its first `=` (so `password=abc==` keeps `abc==`); there is no quoting.
//! An entry without `=` is the endpoint. Keys are matched ignoring ASCII case, as
//! StackExchange.Redis does. An empty `password=` is no password, and `user=` without a password
//! is dropped (no AUTH is sent without a password).
//!
//! Every keyword of StackExchange.Redis's `ConfigurationOptions` is accepted: the list is its
//! `ConfigurationOptions.OptionKeys` (source `src/StackExchange.Redis/ConfigurationOptions.cs`,
//! checked on the main branch as of August 2026). These are used:
//!
//! | key | meaning here |
//! |---|---|
//! | `password` | the access key; empty means none |
//! | `user` | the ACL user name; empty means none |
//! | `ssl` | TLS on or off; a boolean as StackExchange.Redis reads one: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`, in any case |
//! | `sslHost` | the name the server certificate is checked against ([`Endpoint::tls_server_name`]) |
//! | `defaultDatabase` | the database to `SELECT`, 0 or more |
//!
//! These are accepted and their values not read, because they tune StackExchange.Redis itself
//! (the connection layer has its own settings: `connect_timeout`, `response_timeout`, `resp2` on
//! the builder) or belong to deployments this crate does not connect to (Sentinel, Twemproxy /
//! Envoy proxies, HTTP tunnels): `abortConnect`, `allowAdmin`, `asyncTimeout`, `channelPrefix`,
//! `checkCertificateRevocation`, `configChannel`, `configCheckSeconds`, `connectRetry`,
//! `connectTimeout`, `highIntegrity`, `keepAlive`, `name`, `protocol`, `proxy`, `resolveDns`,
//! `sentinelPassword`, `sentinelUser`, `serviceName`, `setlib`, `sslProtocols`, `syncTimeout`,
//! `tcpKeepAlive`, `tiebreaker`, `tunnel`, `version`. StackExchange.Redis itself ignores the
//! deprecated `highPriorityThreads`, `preserveAsyncOrder`, `responseTimeout` and `writeBuffer`;
//! so does this parser. A key that starts with `$` renames a command in StackExchange.Redis
//! (`$CONFIG=`); it is accepted and ignored.
//!
//! Any other key is refused, as StackExchange.Redis refuses it, so that a typo (`sll=True`,
//! `defaultDatabse=3`, `pasword=...`) is not silently dropped: the error names the closest
//! keyword, and names the key itself only when it has the shape of a keyword (ASCII letters, at
//! most 32 of them). Text in the key position may be an access key pasted without `password=`
//! (`host,abc/d+e==` splits into the key `abc/d+e` and the value `=`); an Azure access key has
//! 44 base64 characters, 43 of them before its first `=`, and an Entra ID token holds dots, so
//! neither is ever shown. Values are never shown.
//!
//! # URL syntax
//!
//! `rediss://:KEY@host:6380/0` (client types Java, Python, Go, Node.js); `redis://` without TLS.
//! The path is `/` and a database number, or nothing; the query and fragment are ignored.
//!
//! Access keys are base64 and Service Connector writes them unencoded, so the user part may hold
//! `/`, `+` and `=`, and cannot end at the first `/` as in an ordinary URL parser. The rule:
//!
//! 1. The query or fragment starts at the first `?` or `#` after `://`. Neither is a base64
//!    character, so no raw key holds one.
//! 2. Before that point there is at most one `@`, and the user part ends at it: the user part
//!    is whatever lies between `://` and that `@`, slashes included; the host, port and path
//!    follow it. With no `@` there is no user part.
//! 3. Two or more `@` before the query are refused (neither base64 nor an Entra ID token holds
//!    an `@`): `rediss://:KEY@host:6380/0@evil` cannot be read as "send `KEY@host:6380/0` to
//!    `evil`", and `rediss://:KEY@host:6380/0?x=a@b` sends `KEY` to `host` (the `@` in the query
//!    does not count).
//!
//! So `rediss://:a/b+c==@host:6380/0` is the key `a/b+c==` for `host`. A user name or password
//! that holds `@`, `?`, `#` or `%` must percent-encode them (`%40`, `%3F`, `%23`, `%25`): an
//! unencoded `?` or `#` cannot be told apart from the start of a query, and an unencoded `@`
//! from the end of the user part. `%XX` escapes in the user part are decoded.
//!
//! The user part is `user:password`; a user part without `:` is the password alone (so a key
//! written without its leading `:` is never shown as a user name). An empty password is no
//! password, and then the user name is dropped too: in `rediss://KEY:@host` the "user name" is
//! most likely the key, and a user name is shown in `Display` and `Debug` of [`Auth`] where a
//! password never is.
//!
//! [`Auth`]: super::Auth
//!
//! # Where this parser decides differently from other libraries
//!
//! - TLS is inferred from the host: a StackExchange string without `ssl=` uses TLS for every
//!   host with an Azure suffix ([`Service`]), whatever the port. StackExchange.Redis's Azure
//!   defaults turn TLS on for Azure Managed Redis hosts, but for Azure Cache for Redis hosts only
//!   when the port is 6380, and it knows no TLS for other hosts unless `ssl=true`. In a URL the
//!   scheme alone decides, as everywhere.
//! - Default ports follow the service: without a port, Azure Managed Redis hosts
//!   (`*.redis.azure.net`, `*.redisenterprise.cache.azure.net`) get 10000, every other host 6380
//!   with TLS and 6379 without. That holds for `rediss://` URLs too, where redis-rs and most URL
//!   parsers use 6379 whatever the scheme; StackExchange.Redis uses 6380 for any TLS host,
//!   Azure Managed Redis included.
//! - One endpoint only: StackExchange.Redis takes a list of `host:port` entries; a second one is
//!   an error here.
//! - Unknown StackExchange keys are refused, as StackExchange.Redis does, but with a
//!   did-you-mean; keys it knows that do not apply here are accepted and ignored.
//! - In a URL, the user part runs to the one `@` before the query, slashes included (see above),
//!   where an ordinary URL parser stops at the first `/` and breaks a raw base64 key.
//! - An empty password is no password (`password=`, `rediss://:@host`), and a user name
//!   without a password is dropped.

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;

use super::endpoint::{Endpoint, HostError};

mod stackexchange;
#[cfg(test)]
mod tests;
mod url;

use stackexchange::parse_stackexchange;
use url::parse_url;

/// Which syntax a connection string was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// StackExchange.Redis: `host:port,password=...,ssl=True,...`.
    StackExchange,
    /// URL: `redis://` or `rediss://`.
    Url,
}

/// A parsed connection string: where to connect and with which key.
///
/// Both syntaxes Service Connector writes are read: StackExchange.Redis
/// (`host:6380,password=KEY,ssl=True,defaultDatabase=0`) and URL (`rediss://:KEY@host:6380/0`).
/// In short:
///
/// - StackExchange keys are matched ignoring case; `password`, `user`, `ssl`, `sslHost` and
///   `defaultDatabase` are used, every other keyword StackExchange.Redis knows is accepted and
///   ignored, and an unknown key is an error ([`ConnectionStringErrorKind::UnknownOption`]).
/// - Without `ssl=`, hosts with an Azure suffix get TLS; without a port, Azure Managed Redis
///   gets 10000, other hosts 6380 with TLS and 6379 without (URLs included).
/// - A URL's user part may hold a raw base64 key (`/`, `+`, `=`): it ends at the one `@` before
///   the first `?` or `#`; two `@` there are an error, and `@`, `?`, `#`, `%` in a user name or
///   password must be percent-encoded.
/// - An empty password is no password, and a user name without a password is dropped.
/// - One endpoint only.
///
/// ```
/// use azure_redis_connect::config::{ConnectionString, Syntax};
/// use azure_redis_connect::ExposeSecret;
///
/// let cs: ConnectionString = "shop.redis.cache.windows.net:6380,password=a/b+c==,ssl=True,abortConnect=False"
///     .parse()
///     .unwrap();
/// assert_eq!(cs.syntax, Syntax::StackExchange);
/// assert_eq!(cs.endpoint.host, "shop.redis.cache.windows.net");
/// assert_eq!(cs.password.as_ref().unwrap().expose_secret(), "a/b+c==");
///
/// let cs: ConnectionString = "rediss://:a/b+c==@shop.redis.cache.windows.net:6380/2".parse().unwrap();
/// assert_eq!((cs.endpoint.port, cs.endpoint.tls, cs.endpoint.database), (6380, true, 2));
/// assert_eq!(cs.password.as_ref().unwrap().expose_secret(), "a/b+c==");
/// // The key never shows:
/// assert!(!format!("{cs:?}").contains("a/b+c=="));
///
/// // A typo is an error, with a suggestion:
/// let error = "shop.redis.cache.windows.net,password=k,sll=True"
///     .parse::<ConnectionString>()
///     .unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "unknown option `sll`; did you mean `ssl`? (at byte 40)"
/// );
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionString {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// ACL user name (`user=` or the URL's user part), if any; never set without a password.
    pub username: Option<String>,
    /// The password (access key), if any; never empty.
    pub password: Option<SecretString>,
    /// The syntax it was written in.
    pub syntax: Syntax,
}

/// What is wrong with a connection string, and where (byte offset from its start).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {position})")]
pub struct ConnectionStringError {
    /// What is wrong.
    pub kind: ConnectionStringErrorKind,
    /// Byte offset in the connection string where the problem was found.
    pub position: usize,
}

/// The ways a connection string can be malformed.
///
/// None of them holds text from the connection string, except [`UnknownOption`]'s key when it
/// has the shape of a keyword.
///
/// [`UnknownOption`]: ConnectionStringErrorKind::UnknownOption
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringErrorKind {
    /// Nothing but whitespace.
    #[error("the connection string is empty")]
    Empty,
    /// A URL whose scheme is neither `redis` nor `rediss` (not repeated: the text before `://`
    /// could be anything, a key included).
    #[error("unknown URL scheme: expected `rediss://` (TLS) or `redis://`")]
    UnknownScheme,
    /// No host before the options (StackExchange) or after `//` (URL).
    #[error("no host name is given")]
    MissingHost,
    /// The host or port cannot be read.
    #[error("bad host: {0}")]
    BadHost(HostError),
    /// More than one `host:port` entry; only one endpoint is supported.
    #[error(
        "more than one endpoint is given (an option without `=` counts as an endpoint); only one is supported"
    )]
    SeveralEndpoints,
    /// An option whose value cannot be read, such as `ssl=maybe`.
    #[error("the value of `{option}` is not {expected}")]
    BadOptionValue {
        /// The option's key as StackExchange.Redis spells it.
        option: &'static str,
        /// What the value should be.
        expected: &'static str,
    },
    /// An option key with nothing before the `=`.
    #[error("an option has an empty key before `=`")]
    EmptyOptionKey,
    /// A StackExchange option key that StackExchange.Redis does not know either, such as
    /// `sll=True`.
    #[error("{}", unknown_option(key.as_deref(), *suggestion))]
    UnknownOption {
        /// The key as written, when it has the shape of a keyword (ASCII letters only, at most
        /// 32); `None` otherwise, since text in that position may be a key pasted without
        /// `password=`.
        key: Option<String>,
        /// The keyword it most likely means, such as `ssl` for `sll`.
        suggestion: Option<&'static str>,
    },
    /// A URL path that is not `/` followed by a database number.
    #[error("the path must be `/` and a database number, such as `/0`")]
    BadDatabase,
    /// A `%` not followed by two hex digits in the user part of a URL.
    #[error("a `%` escape in the user part is not followed by two hex digits")]
    BadEscape,
    /// More than one `@` before a URL's query: which one ends the user part cannot be told.
    #[error(
        "more than one `@` before the host: write an `@` in the user name or password as `%40`"
    )]
    SeveralAts,
}

fn unknown_option(key: Option<&str>, suggestion: Option<&str>) -> String {
    let mut text = match key {
        Some(key) => format!("unknown option `{key}`"),
        None => "unknown option (its key is not shown: it does not look like an option \
                 name and may be a secret)"
            .to_owned(),
    };
    match suggestion {
        Some(suggestion) => text.push_str(&format!("; did you mean `{suggestion}`?")),
        None => text.push_str(": StackExchange.Redis knows no such option"),
    }
    text
}

impl ConnectionString {
    /// Parses either syntax: a string that starts with `scheme://` is a URL, anything else is
    /// StackExchange syntax.
    pub fn parse(input: &str) -> Result<ConnectionString, ConnectionStringError> {
        let leading = input.len() - input.trim_start().len();
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err(ConnectionStringErrorKind::Empty, 0));
        }
        match url_scheme(trimmed) {
            Some(scheme) => parse_url(trimmed, scheme, leading),
            None => parse_stackexchange(input),
        }
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectionString::parse(s)
    }
}

impl fmt::Display for ConnectionString {
    /// The endpoint, never the key: `rediss://host:6380/0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.endpoint, f)
    }
}

/// The endpoint a connection string names; without a port, the default for the host and TLS.
fn endpoint(
    host: String,
    port: Option<u16>,
    tls: bool,
    database: i64,
    tls_server_name: Option<String>,
) -> Endpoint {
    let port = port.unwrap_or_else(|| Endpoint::default_port(&host, tls));
    Endpoint {
        host,
        port,
        tls,
        database,
        tls_server_name,
    }
}

fn err(kind: ConnectionStringErrorKind, position: usize) -> ConnectionStringError {
    ConnectionStringError { kind, position }
}

/// The scheme of `input` if it starts with `scheme://` (letters, digits, `+`, `-`, `.`).
fn url_scheme(input: &str) -> Option<&str> {
    let (scheme, _) = input.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}
