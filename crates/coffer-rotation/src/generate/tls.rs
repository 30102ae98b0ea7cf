//! TLS certificates signed by a CA held in a `kubernetes.io/tls` Secret: a fresh ECDSA P-256
//! key per rotation, a random 128-bit serial, server and client auth.

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use zeroize::Zeroizing;

use crate::error::GenerateError;
use crate::secret::SecretData;
use crate::spec::TlsCertificateSpec;

/// Backdating of `notBefore`, so a peer whose clock runs a little behind accepts the
/// certificate at once.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// Signs a new certificate for `spec` with the CA in `ca` (`tls.crt`, `tls.key`).
pub fn certificate(
    spec: &TlsCertificateSpec,
    ca: Option<&SecretData>,
) -> Result<SecretData, GenerateError> {
    let ca_err = |reason: &str| GenerateError::Ca {
        secret: spec.ca_secret_name.clone(),
        reason: reason.to_owned(),
    };
    let ca = ca.ok_or_else(|| ca_err("not found"))?;
    let ca_cert = ca
        .get_str("tls.crt")
        .ok_or_else(|| ca_err("no tls.crt key"))?;
    let ca_key = ca
        .get_str("tls.key")
        .ok_or_else(|| ca_err("no tls.key key"))?;
    let ca_key = KeyPair::from_pem(ca_key).map_err(|_| ca_err("tls.key is not a usable key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key)
        .map_err(|_| ca_err("tls.crt is not a PEM certificate"))?;

    let key_err = |e: rcgen::Error| GenerateError::Key {
        algorithm: "tls certificate",
        reason: e.to_string(),
    };
    let mut params = CertificateParams::new(spec.dns_names.clone()).map_err(key_err)?;
    if !spec.common_name.is_empty() {
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.clone());
    }
    let validity =
        time::Duration::try_from(spec.validity.get()).map_err(|_| GenerateError::Key {
            algorithm: "tls certificate",
            reason: "validity is too long".into(),
        })?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| GenerateError::Random(e.to_string()))?;
    serial[0] &= 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;

    let key = KeyPair::generate().map_err(key_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(key_err)?;
    let mut data = SecretData::new();
    data.insert("tls.crt", cert.pem().as_str());
    data.insert("tls.key", Zeroizing::new(key.serialize_pem()));
    data.insert("ca.crt", ca_cert);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, IsCa};
    use x509_parser::pem::parse_x509_pem;

    fn ca() -> SecretData {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        [("tls.crt", cert.pem()), ("tls.key", key.serialize_pem())]
            .into_iter()
            .map(|(k, v)| (k, v.as_str().to_owned()))
            .map(|(k, v)| (k, crate::SecretValue::new(v.into_bytes())))
            .collect()
    }

    fn spec() -> TlsCertificateSpec {
        serde_json::from_value(serde_json::json!({
            "caSecretName": "ca", "commonName": "orders.svc", "dnsNames": ["orders.svc", "orders"],
            "validity": "24h"
        }))
        .expect("spec")
    }

    #[test]
    fn certificate_chains_to_the_ca() {
        let ca = ca();
        let data = certificate(&spec(), Some(&ca)).expect("signs");
        let (_, leaf_pem) = parse_x509_pem(data.get("tls.crt").expect("tls.crt").expose_secret())
            .expect("leaf PEM");
        let leaf = leaf_pem.parse_x509().expect("leaf parses");
        let (_, ca_pem) =
            parse_x509_pem(ca.get("tls.crt").expect("ca").expose_secret()).expect("CA PEM");
        let ca_cert = ca_pem.parse_x509().expect("CA parses");
        assert_eq!(leaf.issuer(), ca_cert.subject());
        leaf.verify_signature(Some(ca_cert.public_key()))
            .expect("the CA's key signed the leaf");
        assert!(leaf.validity().is_valid());
        let lifetime =
            leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
        assert_eq!(lifetime, 24 * 3600 + 300);
        let sans: Vec<String> = leaf
            .subject_alternative_name()
            .expect("SAN ok")
            .expect("SAN present")
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(sans, ["DNSName(orders.svc)", "DNSName(orders)"]);
        // The key parses back and is the certificate's key.
        let key = KeyPair::from_pem(data.get_str("tls.key").expect("tls.key")).expect("key");
        assert_eq!(
            key.public_key_raw(),
            leaf.public_key().subject_public_key.data.as_ref()
        );
        assert_eq!(data.get("ca.crt"), ca.get("tls.crt"));
    }

    #[test]
    fn a_missing_or_broken_ca_is_a_clear_error() {
        let err = certificate(&spec(), None).expect_err("no CA").to_string();
        assert!(err.contains("\"ca\"") && err.contains("not found"), "{err}");
        let mut broken = ca();
        broken.insert("tls.key", "not a key");
        let err = certificate(&spec(), Some(&broken))
            .expect_err("bad key")
            .to_string();
        assert!(err.contains("tls.key"), "{err}");
    }
}
