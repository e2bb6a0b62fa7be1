//! Reading a JWT's `exp` claim without verifying its signature: we are not
//! the audience, we only need to know when the broker will stop accepting it.

use chrono::{DateTime, Utc};

/// The `exp` claim of `token`, or `None` when the token is not a JWT or has
/// no usable `exp`.
pub fn expiry(token: &str) -> Option<DateTime<Utc>> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<f64>,
    }
    let mut validation = jsonwebtoken::Validation::default();
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    // Any algorithm the broker chose: the header's own is checked against this list.
    validation.algorithms = vec![
        jsonwebtoken::Algorithm::HS256,
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
        jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::Algorithm::RS384,
        jsonwebtoken::Algorithm::RS512,
        jsonwebtoken::Algorithm::ES256,
        jsonwebtoken::Algorithm::ES384,
        jsonwebtoken::Algorithm::PS256,
        jsonwebtoken::Algorithm::PS384,
        jsonwebtoken::Algorithm::PS512,
        jsonwebtoken::Algorithm::EdDSA,
    ];
    let key = jsonwebtoken::DecodingKey::from_secret(&[]);
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).ok()?;
    let exp = data.claims.exp?;
    if !exp.is_finite() || exp <= 0.0 {
        return None;
    }
    DateTime::from_timestamp(exp as i64, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"whatever"),
        )
        .unwrap()
    }

    #[test]
    fn reads_exp_without_the_key() {
        let t = make(serde_json::json!({"exp": 1_900_000_000u64, "sub": "x"}));
        assert_eq!(expiry(&t).unwrap().timestamp(), 1_900_000_000);
    }

    #[test]
    fn missing_exp_or_garbage_is_none() {
        assert_eq!(expiry(&make(serde_json::json!({"sub": "x"}))), None);
        assert_eq!(expiry("not-a-jwt"), None);
        assert_eq!(expiry(""), None);
    }
}
