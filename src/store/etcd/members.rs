//! Each member's maintenance status and alarms, asked of each member directly, not through
//! the request routing: a member that cannot be reached is reported as such, beside the
//! others.

use std::time::Duration;

use etcd_client::{AlarmAction, AlarmOptions, AlarmType};

use super::endpoints::Endpoints;
use super::errors::map_error;
use crate::error::Result;
use crate::store::maintenance::MemberStatus;

/// Ask every member, each within `timeout`.
pub(super) async fn members(endpoints: &Endpoints, timeout: Duration) -> Vec<MemberStatus> {
    let asks = (0..endpoints.len()).map(|index| async move {
        let endpoint = endpoints.url(index).to_owned();
        match tokio::time::timeout(timeout, member(endpoints, index)).await {
            Ok(Ok(status)) => MemberStatus { endpoint, ..status },
            Ok(Err(e)) => MemberStatus { endpoint, error: Some(e.to_string()), ..Default::default() },
            Err(_) => MemberStatus {
                endpoint,
                error: Some(format!("no answer within {timeout:?}")),
                ..Default::default()
            },
        }
    });
    futures::future::join_all(asks).await
}

/// Whether an etcd of `version` answers a progress request only once the watches of the stream
/// have been sent every event up to the revision it reports. Before 3.4.31 and 3.5.13 it could
/// answer ahead of them (etcd#15220, fixed by etcd#15237 and etcd#17557): the versions
/// Kubernetes requires before it trusts a requested progress notification (its
/// ConsistentListFromCache). A version it cannot read is not trusted.
pub(super) fn orders_progress(version: &str) -> bool {
    let mut parts = version.trim_start_matches('v').split(['.', '-', '+']).map(str::parse::<u32>);
    let (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch))) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, 0..=3) | (0..=2, _) => false,
        _ => true,
    }
}

/// Each member's etcd version (`None` where it could not be asked), each within `timeout`.
pub(super) async fn versions(endpoints: &Endpoints, timeout: Duration) -> Vec<Option<String>> {
    let asks = (0..endpoints.len()).map(|index| async move {
        let ask = async {
            let client = endpoints.client(index).await.map_err(|failure| failure.error)?;
            let status = client.maintenance_client().status().await.map_err(map_error)?;
            Ok::<_, crate::error::Error>(status.version().to_owned())
        };
        tokio::time::timeout(timeout, ask).await.ok().and_then(Result::ok)
    });
    futures::future::join_all(asks).await
}

async fn member(endpoints: &Endpoints, index: usize) -> Result<MemberStatus> {
    let client = endpoints.client(index).await.map_err(|failure| failure.error)?;
    let mut maintenance = client.maintenance_client();
    let status = maintenance.status().await.map_err(map_error)?;
    let options = AlarmOptions::new();
    let alarms =
        maintenance.alarm(AlarmAction::Get, AlarmType::None, Some(options)).await.map_err(map_error)?;
    let header = status.header();
    Ok(MemberStatus {
        endpoint: String::new(),
        error: None,
        version: status.version().to_owned(),
        member_id: header.map_or(0, |h| h.member_id()),
        cluster_id: header.map_or(0, |h| h.cluster_id()),
        leader: status.leader(),
        raft_term: status.raft_term(),
        revision: header.map_or(0, |h| h.revision()),
        db_size: status.db_size(),
        db_size_in_use: status.raft_used_db_size(),
        db_size_quota: status.db_size_quota(),
        errors: status.errors().to_vec(),
        alarms: alarms.alarms().iter().map(|a| (a.member_id(), alarm_name(a.alarm()))).collect(),
    })
}

fn alarm_name(alarm: AlarmType) -> String {
    match alarm {
        AlarmType::None => "NONE",
        AlarmType::Nospace => "NOSPACE",
        AlarmType::Corrupt => "CORRUPT",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::orders_progress;

    #[test]
    fn progress_is_trusted_from_the_versions_kubernetes_requires() {
        for old in ["3.5.1", "3.5.12", "3.4.30", "3.3.27", "2.3.8", "", "nonsense", "3.5"] {
            assert!(!orders_progress(old), "{old}");
        }
        for fixed in ["3.5.13", "3.5.21", "3.4.31", "3.6.0", "v3.6.4", "3.7.0-alpha.0", "4.0.0"] {
            assert!(orders_progress(fixed), "{fixed}");
        }
    }
}
