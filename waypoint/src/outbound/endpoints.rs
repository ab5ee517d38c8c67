//! [`EndpointPicker`]: the one place an endpoint of a chosen backend is picked, for HTTP, TCP
//! and UDP alike — round robin over the backend's ready endpoints, and for connection setup
//! every endpoint once starting from the next in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use routing::compiled::{Backend, Endpoint};

/// Round-robin endpoint choice, shared by every clone of a forwarder and by its sockets.
#[derive(Debug, Default)]
pub struct EndpointPicker {
    next: AtomicUsize,
}

impl EndpointPicker {
    /// The endpoint whose turn it is (`None` only for a backend without endpoints, which
    /// routing never selects).
    pub fn pick<'a>(&self, backend: &'a Backend) -> Option<&'a Endpoint> {
        let count = backend.endpoints.len();
        if count == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        backend.endpoints.get(turn % count)
    }

    /// Every endpoint once, starting with the one whose turn it is: the order in which to try
    /// connecting.
    pub fn in_turn<'a>(&self, backend: &'a Backend) -> impl Iterator<Item = &'a Endpoint> + 'a {
        let count = backend.endpoints.len();
        let start = if count == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % count
        };
        (0..count).filter_map(move |offset| backend.endpoints.get((start + offset) % count))
    }
}

#[cfg(test)]
mod tests {
    use routing::compiled::BackendProtocol;
    use routing::model::ObjectKey;

    use super::*;

    fn backend(count: u8) -> Backend {
        Backend {
            service: ObjectKey::new("ns", "svc"),
            port: 80,
            endpoints: (0..count)
                .map(|i| Endpoint {
                    address: ([10, 0, 0, i], 80).into(),
                    pod: None,
                    zone: None,
                })
                .collect::<Vec<_>>()
                .into(),
            protocol: BackendProtocol::Http1,
            tls: None,
            filters: Vec::new(),
            policy: Default::default(),
            cluster_address: None,
            names: None,
        }
    }

    #[test]
    fn endpoints_take_turns_and_setup_tries_each_once() {
        let picker = EndpointPicker::default();
        let three = backend(3);
        let picked: Vec<u8> = (0..6)
            .map(|_| match picker.pick(&three).map(|e| e.address.ip()) {
                Some(std::net::IpAddr::V4(ip)) => ip.octets()[3],
                _ => 255,
            })
            .collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2]);
        let order: Vec<_> = picker.in_turn(&three).map(|e| e.address).collect();
        assert_eq!(order.len(), 3);
        assert_eq!(order[0], three.endpoints[0].address);
        assert!(picker.pick(&backend(0)).is_none());
        assert_eq!(picker.in_turn(&backend(0)).count(), 0);
    }
}
