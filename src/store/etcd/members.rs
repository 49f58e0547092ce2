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
