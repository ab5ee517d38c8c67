//! The plain-data model of the Kubernetes objects a Gateway API data plane needs, independent of
//! where they come from (a YAML loader, an API-server watch, a test).
//!
//! Field names follow the Kubernetes API (camelCase in serialized form). Deserializing applies
//! the defaults the CRDs declare and the API server would fill in (gateway-api spec §3): path
//! `PathPrefix /` and the default match, `Exact` header and query matches, weight 1, the group
//! and kind of references, redirect status 302, `allowedRoutes` from `Same`, CORS `maxAge` 5,
//! mirror fraction denominator 100, gRPC method type `Exact`. Values the API defines as enums
//! keep an `Unsupported` variant instead of failing the object, so that resolution can answer
//! with the status condition the spec prescribes.

mod core;
pub mod envoy_backend;
mod foreign;
mod gateway;
mod grpc_route;
mod http_route;
mod l4_route;
mod listener_set;
mod meta;
mod policy;
mod refs;

pub use core::{
    ConfigMap, EndpointConditions, EndpointPort, EndpointSlice, EndpointTargetRef, Namespace, Pod,
    PodIp, PodSpec, PodStatus, SERVICE_NAME_LABEL, Secret, Service, ServicePort, ServiceSpec,
    SlicedEndpoint, TargetPort,
};
pub use foreign::ForeignObject;
pub use gateway::{
    AllowedRoutes, FromNamespaces, FrontendTls, FrontendTlsConfig, FrontendTlsPort,
    FrontendTlsValidation, FrontendValidationMode, Gateway, GatewayAddress, GatewayBackendTls,
    GatewayClass, GatewayClassSpec, GatewaySpec, GatewayTls, LabelSelector,
    LabelSelectorRequirement, Listener, ListenerTls, RouteGroupKind, RouteNamespaces, TlsMode,
};
pub use grpc_route::{GrpcMethodMatch, GrpcRoute, GrpcRouteMatch, GrpcRouteRule, GrpcRouteSpec};
pub use http_route::{
    Cors, Fraction, HeaderMatchType, HttpHeader, HttpHeaderFilter, HttpHeaderMatch, HttpPathMatch,
    HttpPathModifier, HttpQueryParamMatch, HttpRequestMirror, HttpRequestRedirect, HttpRetry,
    HttpRoute, HttpRouteFilter, HttpRouteFilterType, HttpRouteMatch, HttpRouteRule, HttpRouteSpec,
    HttpRouteTimeouts, HttpUrlRewrite, PathMatchType, PathModifierType,
};
pub use l4_route::{L4Route, L4RouteRule, L4RouteSpec};
pub use listener_set::{
    AllowedListeners, FromListenerNamespaces, ListenerNamespaces, ListenerSet, ListenerSetSpec,
    ParentGatewayReference,
};
pub use meta::{DEFAULT_NAMESPACE, Object, ObjectKey, ObjectMeta};
pub use policy::{
    BackendTlsPolicy, BackendTlsPolicySpec, BackendTlsValidation, PolicyTargetRef, ReferenceGrant,
    ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo,
};
pub use refs::{
    BackendObjectReference, BackendRef, GATEWAY_GROUP, HttpBackendRef, ParentReference,
    SecretObjectReference,
};

/// Every object of one configuration, by kind. The order within a kind is load order.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// GatewayClasses (cluster-scoped).
    pub gateway_classes: Vec<GatewayClass>,
    /// Gateways.
    pub gateways: Vec<Gateway>,
    /// ListenerSets (listeners merged into a Gateway that allows them).
    pub listener_sets: Vec<ListenerSet>,
    /// HTTPRoutes.
    pub http_routes: Vec<HttpRoute>,
    /// GRPCRoutes.
    pub grpc_routes: Vec<GrpcRoute>,
    /// TLSRoutes.
    pub tls_routes: Vec<L4Route>,
    /// TCPRoutes.
    pub tcp_routes: Vec<L4Route>,
    /// UDPRoutes.
    pub udp_routes: Vec<L4Route>,
    /// ReferenceGrants.
    pub reference_grants: Vec<ReferenceGrant>,
    /// BackendTLSPolicies.
    pub backend_tls_policies: Vec<BackendTlsPolicy>,
    /// Services.
    pub services: Vec<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Secrets.
    pub secrets: Vec<Secret>,
    /// ConfigMaps.
    pub config_maps: Vec<ConfigMap>,
    /// Namespaces (cluster-scoped).
    pub namespaces: Vec<Namespace>,
    /// Pods (their service accounts are mesh identities).
    pub pods: Vec<Pod>,
    /// Objects of the policy groups other crates read (`security.istio.io`,
    /// `gateway.envoyproxy.io`), as loaded.
    pub foreign: Vec<ForeignObject>,
    /// The addresses of the host names Envoy Gateway `Backend`s list (`fqdn` endpoints), as
    /// the runtime resolved them before resolution; a name missing here has no endpoints.
    #[serde(skip)]
    pub resolved_names: std::collections::BTreeMap<String, Vec<std::net::IpAddr>>,
}

impl Config {
    /// Appends every object of `other`.
    pub fn extend(&mut self, other: Config) {
        self.gateway_classes.extend(other.gateway_classes);
        self.gateways.extend(other.gateways);
        self.listener_sets.extend(other.listener_sets);
        self.http_routes.extend(other.http_routes);
        self.grpc_routes.extend(other.grpc_routes);
        self.tls_routes.extend(other.tls_routes);
        self.tcp_routes.extend(other.tcp_routes);
        self.udp_routes.extend(other.udp_routes);
        self.reference_grants.extend(other.reference_grants);
        self.backend_tls_policies.extend(other.backend_tls_policies);
        self.services.extend(other.services);
        self.endpoint_slices.extend(other.endpoint_slices);
        self.secrets.extend(other.secrets);
        self.config_maps.extend(other.config_maps);
        self.namespaces.extend(other.namespaces);
        self.pods.extend(other.pods);
        self.foreign.extend(other.foreign);
        self.resolved_names.extend(other.resolved_names);
    }

    /// The host names the `fqdn` endpoints of its Envoy Gateway `Backend`s name (those that
    /// can be read), each once, for the runtime to resolve into
    /// [`resolved_names`](Self::resolved_names).
    pub fn backend_hostnames(&self) -> std::collections::BTreeSet<String> {
        self.foreign
            .iter()
            .filter(|object| envoy_backend::is_envoy_backend(object))
            .filter_map(|object| envoy_backend::EnvoyBackendSpec::of(object).ok())
            .flat_map(|spec| spec.hostnames().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }

    /// The Unix socket paths the `unix` endpoints of its Envoy Gateway `Backend`s name, each
    /// once with its stand-in address
    /// ([`unix_socket_address`](crate::compiled::unix_socket::unix_socket_address)), for the
    /// runtime's connector.
    pub fn backend_unix_sockets(&self) -> Vec<(std::net::SocketAddr, String)> {
        let mut sockets: Vec<(std::net::SocketAddr, String)> = self
            .foreign
            .iter()
            .filter(|object| envoy_backend::is_envoy_backend(object))
            .filter_map(|object| envoy_backend::EnvoyBackendSpec::of(object).ok())
            .flat_map(|spec| spec.endpoints)
            .filter_map(|endpoint| endpoint.unix)
            .map(|unix| {
                let address = crate::compiled::unix_socket::unix_socket_address(&unix.path);
                (address, unix.path)
            })
            .collect();
        sockets.sort();
        sockets.dedup();
        sockets
    }
}

meta::impl_object! {
    GatewayClass => "GatewayClass", cluster_scoped = true;
    Gateway => "Gateway";
    ListenerSet => "ListenerSet";
    HttpRoute => "HTTPRoute";
    GrpcRoute => "GRPCRoute";
    ReferenceGrant => "ReferenceGrant";
    BackendTlsPolicy => "BackendTLSPolicy";
    Service => "Service";
    EndpointSlice => "EndpointSlice";
    Secret => "Secret";
    ConfigMap => "ConfigMap";
    Namespace => "Namespace", cluster_scoped = true;
    Pod => "Pod";
}
