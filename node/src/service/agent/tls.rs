//! Which servers HTTPS trusts: Mozilla's roots (webpki), plus the PEM certificates of
//! `--agent-ca` for a private CA.

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};

/// The TLS settings: Mozilla's roots, and those of `extra_ca` when given (an unreadable file or
/// one without a certificate is an error: the operator meant to trust something).
pub fn config(extra_ca: Option<&Path>) -> Result<TlsConfig, String> {
    let roots = match extra_ca {
        None => RootCerts::WebPki,
        Some(path) => {
            let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()))
                .collect();
            let extra = read_pem(path)?;
            log::info!(
                "agent: trusting {} certificate(s) of {} besides Mozilla's roots",
                extra.len(),
                path.display()
            );
            roots.extend(extra);
            RootCerts::Specific(Arc::new(roots))
        }
    };
    Ok(TlsConfig::builder().root_certs(roots).build())
}

fn read_pem(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("--agent-ca {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("--agent-ca {}: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "--agent-ca {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("agent-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(config(Some(&empty))
            .unwrap_err()
            .contains("no PEM certificate"));
        assert!(config(Some(&dir.join("missing.pem"))).is_err());
        assert!(config(None).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
