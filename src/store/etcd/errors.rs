//! What etcd's and the transport's errors mean to us.

use std::error::Error as _;

use crate::error::Error;

/// Map every `etcd_client::Error` to ours. Every variant is named, so a new one fails to
/// compile here rather than being mapped by accident.
pub(crate) fn map_error(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => map_status(&status),
        E::TransportError(t) => transport_error(&t),
        E::IoError(io) => Error::Unavailable { message: format!("i/o error: {io}"), code: None },
        E::InvalidArgs(m) => Error::invalid(m),
        E::InvalidUri(u) => Error::invalid(format!("invalid endpoint: {u}")),
        E::EndpointError(m) => Error::invalid(format!("invalid endpoint: {m}")),
        E::InvalidMetadataValue(m) => Error::invalid(format!("invalid metadata value: {m}")),
        E::Utf8Error(u) => Error::serialization(None, u),
        E::WatchError(m) => Error::Unavailable { message: format!("watch: {m}"), code: None },
        // etcd-client reports a lease etcd no longer knows as "lease not found".
        E::LeaseKeepAliveError(m) if m.contains("not found") => Error::NotFound { key: "lease".into() },
        E::LeaseKeepAliveError(m) => {
            Error::Unavailable { message: format!("lease keep-alive: {m}"), code: None }
        }
        E::ElectError(m) => Error::Etcd { message: format!("election: {m}"), code: None },
        E::EndpointsNotManaged => Error::invalid("endpoints are not managed by this client"),
        E::Internal(m) => Error::Etcd { message: m, code: None },
    }
}

/// A connection that failed, with the causes tonic's message leaves out.
fn transport_error(t: &tonic::transport::Error) -> Error {
    let message = with_causes(format!("transport error: {t}"), std::error::Error::source(t));
    Error::Unavailable { message, code: None }
}

/// `message` followed by the causes tonic's message leaves out.
fn with_causes(mut message: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(e) = source {
        let cause = e.to_string();
        if !message.ends_with(&cause) {
            message = format!("{message}: {cause}");
        }
        source = e.source();
    }
    message
}

/// A connection made that broke at a client's first request (no request was ever answered):
/// the other end took the connection and not gRPC's HTTP/2, so it is not etcd's client port
/// (a web server, a metrics port, etcd's TLS port asked without TLS).
pub(super) fn not_etcd(e: Error) -> Error {
    let (message, code) = match e {
        Error::Unavailable { message, code } | Error::Etcd { message, code } => (message, code),
        other => (other.to_string(), None),
    };
    Error::Unavailable { message: format!("{NOT_ETCD}: {message}"), code }
}

/// What a failure says when the endpoint is not etcd's gRPC API.
pub(crate) const NOT_ETCD: &str = "this endpoint does not speak etcd's API (is it etcd's client port, 2379?)";

fn map_status(status: &tonic::Status) -> Error {
    use tonic::Code;
    let message = with_causes(status.message().to_owned(), status.source());
    let code = Some(format!("{:?}", status.code()));
    match status.code() {
        // etcd's NOSPACE ("etcdserver: mvcc: database space exceeded"): not a lost connection.
        Code::ResourceExhausted if message.contains("database space exceeded") => {
            Error::QuotaExceeded { message, code }
        }
        Code::Unavailable | Code::Aborted | Code::ResourceExhausted | Code::Cancelled => {
            Error::Unavailable { message, code }
        }
        Code::DeadlineExceeded => Error::Timeout { operation: message, seconds: 0.0 },
        Code::PermissionDenied | Code::Unauthenticated => Error::PermissionDenied { message, code },
        Code::OutOfRange if message.contains("compacted") => Error::Expired { requested: 0, compacted: 0 },
        // etcd answers these auth failures as InvalidArgument or FailedPrecondition.
        Code::InvalidArgument | Code::FailedPrecondition
            if message.contains("authentication failed")
                || message.contains("user name is empty")
                || message.contains("permission denied")
                || message.contains("invalid auth token") =>
        {
            Error::PermissionDenied { message, code }
        }
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            Error::InvalidArgument { message: format!("etcd refused the request: {message}") }
        }
        Code::NotFound => Error::NotFound { key: message },
        // A broken connection under a stream ("h2 protocol error: error reading a body from
        // connection") comes as Unknown with the transport error as its source.
        Code::Unknown if status.source().is_some() || message.starts_with("h2 protocol error") => {
            Error::Unavailable { message, code }
        }
        Code::Ok
        | Code::Unknown
        | Code::AlreadyExists
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => Error::Etcd { message, code },
    }
}
