//! How to reach etcd: deadlines, credentials, TLS, retries and the breaker (the endpoints are
//! given beside it).

use std::time::Duration;

/// How to reach etcd, whichever member; the defaults suit a local etcd. The client holds it
/// (`crate::client::ClientOptions`) and hands it to the store.
#[derive(Clone)]
pub struct EtcdConfig {
    /// Deadline of each request.
    pub timeout: Duration,
    /// Deadline of establishing the connection.
    pub connect_timeout: Duration,
    /// Username and password for etcd's auth.
    pub credentials: Option<(String, String)>,
    /// TLS: the CA that signed etcd's certificate, and a client certificate and key (PEM).
    pub tls: Option<TlsConfig>,
    /// Extra attempts of a read that could not reach etcd (within the request timeout).
    pub retries: u32,
    /// Calls in a row that fail to reach etcd before calls fail fast (0: never).
    pub breaker_threshold: u32,
    /// How long calls fail fast before one probes etcd again.
    pub breaker_reset: Duration,
    /// The cluster's election timeout: a member that answers only "no leader" for longer
    /// leaves the rotation until it has a leader again (`leaderless`).
    pub election_timeout: Duration,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password or the TLS key.
        f.debug_struct("EtcdConfig")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("tls", &self.tls.is_some())
            .field("retries", &self.retries)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_reset", &self.breaker_reset)
            .field("election_timeout", &self.election_timeout)
            .finish()
    }
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            credentials: None,
            tls: None,
            retries: 2,
            breaker_threshold: 5,
            breaker_reset: Duration::from_secs(2),
            election_timeout: super::leaderless::ELECTION_TIMEOUT,
        }
    }
}

/// PEM material for TLS to etcd.
#[derive(Clone, Default)]
pub struct TlsConfig {
    pub ca: Option<Vec<u8>>,
    pub client_cert: Option<Vec<u8>>,
    pub client_key: Option<Vec<u8>>,
    /// The name to check etcd's certificate against (default: the endpoint's host).
    pub domain: Option<String>,
}

impl TlsConfig {
    pub(super) fn options(&self) -> etcd_client::TlsOptions {
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
        }
        if let Some(domain) = &self.domain {
            tls = tls.domain_name(domain.clone());
        }
        tls
    }
}

/// HTTP/2 keep-alive ping interval: a connection with requests or watches open that has read
/// nothing for this long is pinged, and closed if the ping is not answered within the request
/// timeout (a watch on a silent member then ends and reopens elsewhere, even with no request
/// to notice). etcd counts a ping less than `--grpc-keepalive-min-time` (5 s by default) after
/// the previous one as abuse and closes the connection (GOAWAY `too_many_pings`): hyper pings
/// only after the interval without reading anything, so pings are at least this far apart.
/// Idle connections are not pinged: etcd does not permit pings without a stream open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::{EtcdConfig, TlsConfig};

    #[test]
    fn debug_never_shows_the_password_or_the_key() {
        let config = EtcdConfig {
            credentials: Some(("alice".into(), "s3cret-password".into())),
            tls: Some(TlsConfig { client_key: Some(b"PRIVATE-KEY".to_vec()), ..TlsConfig::default() }),
            ..EtcdConfig::default()
        };
        let shown = format!("{:?}", crate::client::ClientOptions { etcd: config, max_document_bytes: 1 });
        assert!(shown.contains("alice") && shown.contains("retries: 2"), "{shown}");
        assert!(!shown.contains("s3cret") && !shown.contains("PRIVATE"), "{shown}");
    }
}
