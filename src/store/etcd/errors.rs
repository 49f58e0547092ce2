//! What etcd's and the transport's errors mean to us.

use std::error::Error as _;

use crate::error::Error;

/// Map every `etcd_client::Error` to ours. Every variant is named, so a new one fails to
/// compile here rather than being mapped by accident.
pub(crate) fn map_error(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => map_status(&status),
        E::TransportError(t) => Error::Unavailable { message: format!("transport error: {t}"), code: None },
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

fn map_status(status: &tonic::Status) -> Error {
    use tonic::Code;
    let message = status.message().to_owned();
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
