//! [`SelectMeshRoute`]: GAMMA route selection for waypoints — by destination Service and port
//! and the caller's namespace (spec §2.6), putting a [`MatchedRoute`] into the request like
//! [`SelectRoute`](super::SelectRoute).
//!
//! | situation | error |
//! | --- | --- |
//! | no [`MeshDestination`] on the request | `Misassembled` |
//! | the destination is not a known Service port | `NoRoute` |
//! | routes apply to the port but none matches | `NoRoute` |
//! | no route applies | the port's implicit rule: forward to the Service itself |

use http::Request;
use std::sync::Arc;

use super::select::{RouteSelector, Select, SelectLayer};
use super::{MatchedRoute, RouteError};
use crate::compiled::MeshRoutes;
use crate::http_route::RequestView;
use crate::model::ObjectKey;

/// Where a mesh request goes and who sends it, as a request extension set by the layers that
/// terminate the tunnel (the HBONE `CONNECT` authority, the PROXY header, the peer identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshDestination {
    /// The destination Service.
    pub service: ObjectKey,
    /// The destination Service port.
    pub port: u16,
    /// The caller's namespace (from its SPIFFE identity), for consumer routes.
    pub source_namespace: Option<String>,
}

/// Mesh route selection by [`MeshDestination`].
pub type SelectMeshRoute<S> = Select<MeshRoutes, S>;

/// The layer of [`SelectMeshRoute`].
pub type SelectMeshRouteLayer = SelectLayer<MeshRoutes>;

impl RouteSelector for MeshRoutes {
    fn select_route<B>(&self, request: &mut Request<B>) -> Result<MatchedRoute, RouteError> {
        select_mesh(self, request)
    }
}

/// The rule for `request` by its [`MeshDestination`].
pub fn select_mesh<B>(
    routes: &MeshRoutes,
    request: &Request<B>,
) -> Result<MatchedRoute, RouteError> {
    let destination = request
        .extensions()
        .get::<MeshDestination>()
        .ok_or(RouteError::Misassembled("mesh route selection"))?;
    let port = routes
        .service(&destination.service)
        .and_then(|service| service.port(destination.port))
        .ok_or(RouteError::NoRoute)?;
    let rule = match port.table_for(destination.source_namespace.as_deref()) {
        None => Arc::clone(&port.default_rule),
        Some(table) => {
            let selected = table
                .select(&RequestView::of(request))
                .ok_or(RouteError::NoRoute)?;
            Arc::clone(&selected.target)
        }
    };
    Ok(MatchedRoute::on_service_port(rule, destination.port))
}
