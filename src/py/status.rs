//! Members' maintenance status for Python (`EtcdClient.members()`): a list of dicts.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::store::maintenance::MemberStatus;

pub struct Members(pub Vec<MemberStatus>);

impl<'py> IntoPyObject<'py> for Members {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let out = PyList::empty(py);
        for m in self.0 {
            let d = PyDict::new(py);
            d.set_item("endpoint", m.endpoint)?;
            d.set_item("error", m.error)?;
            d.set_item("version", m.version)?;
            d.set_item("member_id", format!("{:x}", m.member_id))?;
            d.set_item("cluster_id", format!("{:x}", m.cluster_id))?;
            d.set_item("leader", format!("{:x}", m.leader))?;
            d.set_item("is_leader", m.leader != 0 && m.leader == m.member_id)?;
            d.set_item("raft_term", m.raft_term)?;
            d.set_item("revision", m.revision)?;
            d.set_item("db_size", m.db_size)?;
            d.set_item("db_size_in_use", m.db_size_in_use)?;
            d.set_item("db_size_quota", (m.db_size_quota > 0).then_some(m.db_size_quota))?;
            d.set_item("errors", m.errors)?;
            let alarms: Vec<(String, String)> =
                m.alarms.into_iter().map(|(member, alarm)| (format!("{member:x}"), alarm)).collect();
            d.set_item("alarms", alarms)?;
            out.append(d)?;
        }
        Ok(out)
    }
}
