//! A route's `websockets_per_client`: relayed WebSockets one client
//! address (IPv6 by /64, as every per-address limit) may hold on the route
//! at once. The connection limits count connections on a listener; this
//! counts what a route carries, whoever connected (a client behind a
//! trusted proxy is counted under its own address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::ip_key;

/// Live WebSockets per route and client address.
#[derive(Debug, Default)]
pub struct WebSocketCaps {
    held: Arc<Mutex<HashMap<(usize, IpAddr), u64>>>,
}

impl WebSocketCaps {
    /// A slot for one more WebSocket of `ip` on route `route`, unless it
    /// holds `max` already.
    pub fn take(&self, route: usize, ip: IpAddr, max: u64) -> Option<WebSocketSlot> {
        let key = (route, ip_key(ip));
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(key).or_insert(0);
        if *count >= max {
            if *count == 0 {
                held.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(WebSocketSlot {
            held: self.held.clone(),
            key,
        })
    }
}

/// One WebSocket's place under its route's cap, given back on drop.
#[derive(Debug)]
pub struct WebSocketSlot {
    held: Arc<Mutex<HashMap<(usize, IpAddr), u64>>>,
    key: (usize, IpAddr),
}

impl Drop for WebSocketSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_max_per_route_and_slots_come_back() {
        let caps = WebSocketCaps::default();
        let ip = "192.0.2.1".parse().unwrap();
        let first = caps.take(0, ip, 2).unwrap();
        let _second = caps.take(0, ip, 2).unwrap();
        assert!(caps.take(0, ip, 2).is_none());
        assert!(caps.take(1, ip, 2).is_some(), "another route counts apart");
        assert!(caps.take(0, "192.0.2.2".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(caps.take(0, ip, 2).is_some());
    }
}
