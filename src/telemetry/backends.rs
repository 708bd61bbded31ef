//! `wsgate_backend_up` and `wsgate_backend_connections_active`, read at
//! each scrape from whoever keeps backend state (the upstream registry),
//! through a plain callback: no stale series for a backend a reload
//! removed, and no gauge to keep in step with the state it mirrors.

use std::fmt;
use std::sync::RwLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::labels::RouteBackendLabels;

/// One backend of one route at the moment of a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSample {
    /// The route's name.
    pub route: String,
    /// The backend as configured.
    pub backend: String,
    /// Whether it takes new connections.
    pub up: bool,
    /// Connections counted on it now.
    pub active: u64,
}

/// Where the samples come from.
pub type BackendSource = Box<dyn Fn() -> Vec<BackendSample> + Send + Sync>;

/// The collector registered under the two gauge names.
#[derive(Default)]
pub(crate) struct BackendGauges {
    /// Set once the gateway exists; nothing is exported before.
    source: RwLock<Option<BackendSource>>,
}

impl fmt::Debug for BackendGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackendGauges")
    }
}

impl BackendGauges {
    /// Reads samples from `source` from now on.
    pub(crate) fn watch(&self, source: BackendSource) {
        *self.source.write().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    fn samples(&self) -> Vec<BackendSample> {
        let source = self.source.read().unwrap_or_else(|e| e.into_inner());
        let mut samples = source.as_ref().map(|s| s()).unwrap_or_default();
        samples.sort_by(|a, b| (&a.route, &a.backend).cmp(&(&b.route, &b.backend)));
        samples
    }
}

impl Collector for BackendGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let samples = self.samples();
        type Value = fn(&BackendSample) -> i64;
        let families: [(&str, &str, Value); 2] = [
            (
                "backend_up",
                "Whether a backend takes new connections (1) or is out of rotation (0)",
                |s| i64::from(s.up),
            ),
            (
                "backend_connections_active",
                "Open WebSockets, fallback sessions and in-flight requests on a backend",
                |s| s.active as i64,
            ),
        ];
        for (name, help, value) in families {
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            for sample in &samples {
                let labels = RouteBackendLabels {
                    route: sample.route.clone(),
                    backend: sample.backend.clone(),
                };
                ConstGauge::new(value(sample)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
