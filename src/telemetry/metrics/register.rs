//! Every family in the registry under its documented name
//! (`docs/metrics.md`), in one place.

use super::Metrics;

impl Metrics {
    /// Puts every family in the registry under its documented name.
    pub(super) fn register(&mut self) {
        self.register_websocket();
        self.register_gateway();
        self.cluster.register(&mut self.registry);
        self.register_certificates();
        self.edge.register(&mut self.registry);
        self.http2.register(&mut self.registry);
    }

    /// The families of certificates and ACME.
    fn register_certificates(&mut self) {
        let r = &mut self.registry;
        r.register(
            "certificate_expiry_seconds",
            "When each certificate served expires (notAfter, Unix seconds), by name",
            self.certificates.family.clone(),
        );
        r.register(
            "acme_orders",
            "ACME orders placed, by result",
            self.acme_orders.clone(),
        );
    }

    /// The families of WebSocket upgrades and relays.
    fn register_websocket(&mut self) {
        let r = &mut self.registry;
        r.register(
            "websocket_handshakes",
            "WebSocket upgrade requests by outcome and rejection reason",
            self.handshakes.clone(),
        );
        r.register(
            "websocket_connections_active",
            "WebSockets being relayed now",
            self.ws.active.clone(),
        );
        r.register(
            "websocket_messages",
            "Messages relayed, by direction",
            self.ws.messages.clone(),
        );
        r.register(
            "websocket_bytes",
            "Payload bytes relayed, by direction",
            self.ws.bytes.clone(),
        );
        r.register(
            "websocket_spliced_bytes",
            "Of the payload bytes relayed, those moved socket to socket by splice(2)",
            self.ws.spliced.clone(),
        );
        r.register(
            "websocket_close_codes",
            "Close codes sent by clients and backends",
            self.ws.closes.clone(),
        );
        r.register(
            "websocket_gateway_close_codes",
            "Close codes the gateway itself sent, by receiving side",
            self.ws.gateway_closes.clone(),
        );
        r.register(
            "websocket_sessions_ended",
            "Relayed sessions ended, by why",
            self.ws.ended.clone(),
        );
        r.register(
            "websocket_session_duration_seconds",
            "How long relayed sessions lasted",
            self.ws.duration.clone(),
        );
    }

    /// The families of backends, HTTP, TLS, the fallback, limits and reloads.
    fn register_gateway(&mut self) {
        let r = &mut self.registry;
        r.register(
            "backend_connect_duration_seconds",
            "Time to connect to a backend (TLS included), successful connects",
            self.connect_latency.clone(),
        );
        r.register(
            "backend_connect_errors",
            "Failed backend connects, by backend and reason",
            self.connect_errors.clone(),
        );
        r.register_collector(Box::new(self.backends.clone()));
        r.register(
            "backend_health_checks",
            "Active health checks of backends, by outcome",
            self.health_checks.clone(),
        );
        r.register(
            "http_requests",
            "Requests answered, by route and status class",
            self.http.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "Client TLS handshakes that failed",
            self.tls_failures.clone(),
        );
        r.register(
            "tls_plain_http_requests",
            "Plain HTTP requests on a TLS listener, answered 400",
            self.tls_plain_http.clone(),
        );
        r.register(
            "fallback_sessions",
            "Fallback sessions opened, by transport and the client's HTTP version",
            self.fallback_sessions.clone(),
        );
        r.register(
            "fallback_sessions_active",
            "Fallback sessions open now, by transport",
            self.fallback_active.clone(),
        );
        r.register(
            "fallback_messages",
            "Messages carried by fallback sessions, by transport and direction",
            self.fallback_messages.clone(),
        );
        r.register(
            "limit_refusals",
            "Clients refused or cut by a limit, by limit and answer",
            self.limit_refusals.clone(),
        );
        r.register(
            "config_reloads",
            "Config reload attempts, by result",
            self.reloads.clone(),
        );
    }
}
