//! Why a token could not be had, in words that carry what a user needs and never a secret.
//!
//! An identity endpoint's error body may hold anything, a token included (a misbehaving proxy,
//! or an endpoint that answers `500 {"access_token": ...}`); azure_identity copies some bodies
//! into its error messages (`"The request failed: {body}"` from the managed identity
//! credentials). So an error is described here from its structure alone: the credential, the
//! HTTP status, Entra's numeric error codes (`AADSTS...`) and the troubleshooting link. Text from
//! errors that came without an HTTP response (a refused connection, a missing token file) is
//! kept, with anything shaped like a token taken out.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use azure_core::error::ErrorKind;

/// Why a token could not be had. Never carries the token, nor an identity endpoint's response
/// body.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The credential failed without an answer from the identity endpoint (endpoint
    /// unreachable, a bad setting, a missing token file, ...).
    #[error("{source_name} could not get a token: {message}")]
    Credential {
        /// Which credential.
        source_name: String,
        /// What it said, with anything shaped like a token taken out.
        message: String,
    },
    /// The identity endpoint answered with an error status.
    #[error("{source_name} could not get a token: {refusal}")]
    Refused {
        /// Which credential.
        source_name: String,
        /// The HTTP status, Entra's error codes and where to read more.
        refusal: Refusal,
    },
    /// The token request took longer than the policy's `request_timeout`.
    #[error("the token request took longer than {0:?}")]
    Timeout(Duration),
    /// The token is not a JWT, so the user name (`oid` claim) cannot be read from it.
    #[error(
        "the access token is not a JWT, so its `oid` claim (the Redis user name) cannot be read; set the user name explicitly"
    )]
    NotAJwt,
    /// The token has no `oid` claim.
    #[error(
        "the access token has no `oid` claim, which Azure Redis takes as the user name; set the user name explicitly"
    )]
    NoObjectId,
}

/// What an identity endpoint's error answer says, without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The HTTP status code.
    pub status: u16,
    /// Entra ID's error codes (`AADSTS700016`, ...), when the endpoint gave numeric ones.
    pub error_codes: Vec<String>,
    /// The troubleshooting page for the credential.
    pub help: Option<&'static str>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the identity endpoint answered HTTP {}", self.status)?;
        if let Some(hint) = status_hint(self.status) {
            write!(f, " ({hint})")?;
        }
        if !self.error_codes.is_empty() {
            write!(f, ", error {}", self.error_codes.join(", "))?;
        }
        if let Some(help) = self.help {
            write!(f, "; see {help}")?;
        }
        Ok(())
    }
}

fn status_hint(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "for managed identity: the identity is not assigned to this resource",
        401 => "the credential was refused",
        403 => "the identity may not request this token",
        404 => "no identity endpoint at this address",
        429 => "throttled",
        500..=599 => "the identity service failed; retried",
        _ => return None,
    })
}

/// The troubleshooting page azure_identity names for a credential type.
pub(crate) fn help_for(credential_type: &str) -> Option<&'static str> {
    Some(match credential_type {
        "ManagedIdentityCredential" => "https://aka.ms/azsdk/rust/identity/troubleshoot#managed-id",
        "ClientSecretCredential" => "https://aka.ms/azsdk/rust/identity/troubleshoot#client-secret",
        "WorkloadIdentityCredential" => "https://aka.ms/azsdk/rust/identity/troubleshoot#workload",
        "DeveloperToolsCredential" => "https://aka.ms/azsdk/rust/identity/troubleshoot",
        _ => return None,
    })
}

/// The [`TokenError`] for an azure_core error of the credential `source_name` (of
/// azure_identity type `credential_type`): an HTTP error status anywhere in its chain becomes a
/// [`TokenError::Refused`] with no text of the response; any other error keeps its message,
/// with token-shaped text removed.
pub(crate) fn from_azure(
    source_name: &str,
    credential_type: &str,
    error: &azure_core::Error,
) -> TokenError {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(azure) = current.downcast_ref::<azure_core::Error>()
            && let ErrorKind::HttpResponse {
                status, error_code, ..
            } = azure.kind()
        {
            return TokenError::Refused {
                source_name: source_name.to_owned(),
                refusal: Refusal {
                    status: u16::from(*status),
                    error_codes: entra_codes(error_code.as_deref()),
                    help: help_for(credential_type),
                },
            };
        }
        next = current.source();
    }
    TokenError::Credential {
        source_name: source_name.to_owned(),
        message: scrub(&error.to_string()),
    }
}

/// Entra's numeric error codes (`"700016,7000215"`) as `AADSTS700016`, ...; anything that is
/// not a short number is dropped.
fn entra_codes(codes: Option<&str>) -> Vec<String> {
    codes
        .into_iter()
        .flat_map(|codes| codes.split(','))
        .map(str::trim)
        .filter(|code| {
            !code.is_empty() && code.len() <= 10 && code.bytes().all(|b| b.is_ascii_digit())
        })
        .take(8)
        .map(|code| format!("AADSTS{code}"))
        .collect()
}

/// The longest message kept.
const MAX_MESSAGE: usize = 400;

/// `text` with every run that could be a token or a key replaced by `[REDACTED]`: runs of
/// base64 / base64url characters (with `.` for JWTs) holding 24 letters and digits or more, of
/// both cases and with a digit (random text; a path or a word is not), and whatever
/// follows a field name that names a token (`access_token`, `token`, `password`, `secret`,
/// `assertion`). Control characters become spaces, and the result is cut at
/// [`MAX_MESSAGE`] characters.
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let random = run.chars().filter(|c| c.is_ascii_alphanumeric()).count() >= 24
            && run.chars().any(|c| c.is_ascii_uppercase())
            && run.chars().any(|c| c.is_ascii_lowercase())
            && run.chars().any(|c| c.is_ascii_digit());
        if random {
            out.push_str("[REDACTED]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '=' | '~') {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    let out = redact_after_secret_names(&out);
    if out.chars().count() > MAX_MESSAGE {
        let mut cut: String = out.chars().take(MAX_MESSAGE).collect();
        cut.push_str("...");
        cut
    } else {
        out
    }
}

/// Cuts the text after the first name of a secret-bearing field: what follows is a value.
fn redact_after_secret_names(text: &str) -> String {
    const NAMES: [&str; 6] = [
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "client_assertion",
        "password",
    ];
    let lower = text.to_ascii_lowercase();
    match NAMES.iter().filter_map(|name| lower.find(name)).min() {
        Some(at) => format!("{}[REDACTED]", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::StatusCode;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiJzZWNyZXQtb2lkIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

    fn http_error(status: StatusCode, code: Option<&str>, message: String) -> azure_core::Error {
        azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status,
                error_code: code.map(str::to_owned),
                raw_response: None,
            },
            message,
        )
    }

    #[test]
    fn an_http_error_keeps_status_codes_and_link_and_drops_the_body() {
        let inner = http_error(
            StatusCode::InternalServerError,
            None,
            format!(r#"The request failed: {{"access_token":"{JWT}"}}"#),
        );
        // azure_identity wraps it once more, copying the inner message.
        let outer = azure_core::Error::with_error(
            ErrorKind::Credential,
            inner,
            format!(
                r#"ManagedIdentityCredential authentication failed. {{"access_token":"{JWT}"}}"#
            ),
        );
        let error = from_azure(
            "system-assigned managed identity",
            "ManagedIdentityCredential",
            &outer,
        );
        let text = error.to_string();
        assert!(!text.contains("eyJ"), "{text}");
        assert_eq!(
            text,
            "system-assigned managed identity could not get a token: the identity endpoint \
             answered HTTP 500 (the identity service failed; retried); see \
             https://aka.ms/azsdk/rust/identity/troubleshoot#managed-id"
        );
        assert!(!format!("{error:?}").contains("eyJ"));
    }

    #[test]
    fn entra_error_codes_are_named_and_text_codes_dropped() {
        let error = http_error(
            StatusCode::Unauthorized,
            Some("7000215,50034"),
            String::new(),
        );
        let error = from_azure("service principal", "ClientSecretCredential", &error);
        assert_eq!(
            error.to_string(),
            "service principal could not get a token: the identity endpoint answered HTTP 401 \
             (the credential was refused), error AADSTS7000215, AADSTS50034; see \
             https://aka.ms/azsdk/rust/identity/troubleshoot#client-secret"
        );
        let forged = http_error(StatusCode::BadRequest, Some(JWT), String::new());
        let text = from_azure("x", "y", &forged).to_string();
        assert!(!text.contains("eyJ") && !text.contains("AADSTS"), "{text}");
    }

    #[test]
    fn other_errors_keep_their_words_without_tokens() {
        let error = azure_core::Error::with_message(
            ErrorKind::Io,
            format!(
                "connection refused\nnext line {JWT} and key abcdefghijkLMNOPQRSTUVWXyz0123+/=="
            ),
        );
        let text =
            from_azure("workload identity", "WorkloadIdentityCredential", &error).to_string();
        assert_eq!(
            text,
            "workload identity could not get a token: connection refused next line [REDACTED] \
             and key [REDACTED]"
        );
        assert_eq!(scrub("x access_token: short"), "x [REDACTED]");
        let path = "no file /var/run/secrets/azure/tokens/azure-identity-token";
        assert_eq!(scrub(path), path);
        let long = "word ".repeat(200);
        assert!(scrub(&long).len() <= MAX_MESSAGE + 3);
    }
}
