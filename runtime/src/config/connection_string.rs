//! Connection strings in the two syntaxes Service Connector writes.
//!
//! - StackExchange.Redis (client type .NET): `host:6380,password=KEY,ssl=True,defaultDatabase=0`,
//!   options split at every `,` and each at its first `=` (so `password=abc==` keeps `abc==`);
//!   there is no quoting.
//! - URL (Java, Python, Go, Node.js): `rediss://:KEY@host:6380/0`. Access keys are base64 and may
//!   hold `/`, `+` and `=` unencoded, so the user part runs up to the *last* `@`; `%XX` escapes in
//!   it are decoded.
//!
//! Errors give the byte position and what is wrong, never the text at fault, which may be a key.

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;

use super::endpoint::{Endpoint, HostError, Service, split_host_port};

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
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionString {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// ACL user name (`user=` or the URL's user part), if any.
    pub username: Option<String>,
    /// The password (access key), if any.
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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringErrorKind {
    /// Nothing but whitespace.
    #[error("the connection string is empty")]
    Empty,
    /// A URL whose scheme is neither `redis` nor `rediss`.
    #[error("unknown URL scheme `{scheme}`: expected `rediss://` (TLS) or `redis://`")]
    UnknownScheme {
        /// The scheme found.
        scheme: String,
    },
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
        /// The option's key as written.
        option: &'static str,
        /// What the value should be.
        expected: &'static str,
    },
    /// An option key with nothing before the `=`.
    #[error("an option has an empty key before `=`")]
    EmptyOptionKey,
    /// A URL path that is not `/` followed by a database number.
    #[error("the path must be `/` and a database number, such as `/0`")]
    BadDatabase,
    /// A `%` not followed by two hex digits in the user part of a URL.
    #[error("a `%` escape in the user part is not followed by two hex digits")]
    BadEscape,
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

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn parse_stackexchange(input: &str) -> Result<ConnectionString, ConnectionStringError> {
    let mut host: Option<(String, Option<u16>)> = None;
    let mut tls = None;
    let mut database = 0;
    let mut username = None;
    let mut password = None;
    let mut tls_server_name = None;
    let mut offset = 0;
    for part in input.split(',') {
        let start = offset;
        offset += part.len() + 1;
        let position = start + (part.len() - part.trim_start().len());
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            if host.is_some() {
                return Err(err(ConnectionStringErrorKind::SeveralEndpoints, position));
            }
            let parsed = split_host_port(part)
                .map_err(|e| err(ConnectionStringErrorKind::BadHost(e), position))?;
            host = Some(parsed);
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        let bad = |option, expected| {
            err(
                ConnectionStringErrorKind::BadOptionValue { option, expected },
                position,
            )
        };
        match key.to_ascii_lowercase().as_str() {
            "" => return Err(err(ConnectionStringErrorKind::EmptyOptionKey, position)),
            "password" => password = Some(SecretString::from(value)),
            "user" => username = Some(value.to_owned()).filter(|u| !u.is_empty()),
            "ssl" => tls = Some(parse_bool(value).ok_or_else(|| bad("ssl", "`True` or `False`"))?),
            "defaultdatabase" => {
                database = value
                    .parse::<i64>()
                    .ok()
                    .filter(|db| *db >= 0)
                    .ok_or_else(|| bad("defaultDatabase", "a database number"))?;
            }
            "sslhost" => tls_server_name = Some(value.to_owned()).filter(|h| !h.is_empty()),
            // Client-side tuning (abortConnect, connectTimeout, syncTimeout, allowAdmin, ...)
            // means nothing to this client.
            _ => {}
        }
    }
    let Some((host, port)) = host else {
        return Err(err(ConnectionStringErrorKind::MissingHost, 0));
    };
    // StackExchange defaults to no TLS; Azure's hosts accept Entra ID only over TLS, and
    // Service Connector always writes `ssl=True`, so a missing `ssl` follows the host.
    let tls = tls.unwrap_or(Service::of_host(&host) != Service::Other);
    let port = port.unwrap_or_else(|| Endpoint::default_port(&host, tls));
    Ok(ConnectionString {
        endpoint: Endpoint {
            host,
            port,
            tls,
            database,
            tls_server_name,
        },
        username,
        password,
        syntax: Syntax::StackExchange,
    })
}

fn parse_url(
    input: &str,
    scheme: &str,
    base: usize,
) -> Result<ConnectionString, ConnectionStringError> {
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "rediss" => true,
        "redis" => false,
        _ => {
            return Err(err(
                ConnectionStringErrorKind::UnknownScheme {
                    scheme: scheme.to_owned(),
                },
                base,
            ));
        }
    };
    let rest_start = scheme.len() + 3;
    let rest = &input[rest_start..];
    // The key may hold `/`, so the user part ends at the last `@`, not at the first `/`.
    let (userinfo, authority_start) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), at + 1),
        None => (None, 0),
    };
    let after_user = &rest[authority_start..];
    let authority_len = after_user.find(['/', '?', '#']).unwrap_or(after_user.len());
    let authority = &after_user[..authority_len];
    let authority_pos = base + rest_start + authority_start;
    if authority.is_empty() {
        return Err(err(ConnectionStringErrorKind::MissingHost, authority_pos));
    }
    let (host, port) = split_host_port(authority)
        .map_err(|e| err(ConnectionStringErrorKind::BadHost(e), authority_pos))?;

    let tail = &after_user[authority_len..];
    let path_len = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = &tail[..path_len];
    let path_pos = authority_pos + authority_len;
    let database = match path.strip_prefix('/') {
        None | Some("") => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| err(ConnectionStringErrorKind::BadDatabase, path_pos))?,
    };

    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => {
            let user_pos = base + rest_start;
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| err(ConnectionStringErrorKind::BadEscape, user_pos))
            };
            match userinfo.split_once(':') {
                Some((user, pass)) => (
                    Some(decode(user)?).filter(|u| !u.is_empty()),
                    Some(SecretString::from(decode(pass)?)),
                ),
                // `redis://KEY@host`: a lone user part is taken as the password, so that a key
                // written without its `:` is never shown as a user name.
                None => (None, Some(SecretString::from(decode(userinfo)?))),
            }
        }
    };
    let port = port.unwrap_or_else(|| Endpoint::default_port(&host, tls));
    Ok(ConnectionString {
        endpoint: Endpoint {
            host,
            port,
            tls,
            database,
            tls_server_name: None,
        },
        username,
        password,
        syntax: Syntax::Url,
    })
}

/// Decodes `%XX` escapes; `None` for a `%` without two hex digits or bytes that are not UTF-8.
fn percent_decode(input: &str) -> Option<String> {
    if !input.contains('%') {
        return Some(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
