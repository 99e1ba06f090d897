//! Reads the claims the client needs from an Entra ID access token (a JWT).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::TokenError;

#[derive(Deserialize)]
struct Claims {
    oid: Option<String>,
}

/// The `oid` claim (the identity's object id, the Redis user name) of a JWT.
///
/// The payload is base64url without padding and is parsed as JSON: never searched as text.
pub(crate) fn object_id(token: &str) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::NotAJwt);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| TokenError::NotAJwt)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| TokenError::NotAJwt)?;
    match claims.oid {
        Some(oid) if !oid.is_empty() => Ok(oid),
        _ => Err(TokenError::NoObjectId),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_the_oid_claim_as_json() {
        let token = jwt(r#"{"aud":"https://redis.azure.com","oid":"0b5c-oid","tid":"t"}"#);
        assert_eq!(object_id(&token).unwrap(), "0b5c-oid");
        // A look-alike in another claim is not taken for the oid.
        let token = jwt(r#"{"xoid":"wrong","note":"\"oid\":\"wrong\""}"#);
        assert!(matches!(object_id(&token), Err(TokenError::NoObjectId)));
        let token = jwt(r#"{"oid":""}"#);
        assert!(matches!(object_id(&token), Err(TokenError::NoObjectId)));
    }

    #[test]
    fn rejects_what_is_not_a_jwt() {
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode("[1]")),
        ] {
            assert!(matches!(object_id(bad), Err(TokenError::NotAJwt)), "{bad}");
        }
    }
}
