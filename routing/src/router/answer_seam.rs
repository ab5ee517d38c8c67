//! What a layer outside the error-to-answer step needs to adjust an answer after the fact
//! (a response override, late response headers): which rule the request matched, and whether
//! the answer was made locally rather than relayed from a backend.

use std::sync::{Arc, Mutex};

use super::MatchedRoute;

/// A request extension through which route selection reports the rule it matched to a layer
/// outside it. The outer layer inserts an empty slot; [`Select`](super::Select) and
/// [`reselect`](super::reselect) fill it; the outer layer reads it once the answer is made —
/// including an answer to an error, when no response carries the route any more.
#[derive(Debug, Clone, Default)]
pub struct MatchedRouteSlot(Arc<Mutex<Option<MatchedRoute>>>);

impl MatchedRouteSlot {
    /// An empty slot.
    pub fn new() -> Self {
        MatchedRouteSlot::default()
    }

    /// Records `matched` (the latest selection wins).
    pub fn fill(&self, matched: &MatchedRoute) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(matched.clone());
        }
    }

    /// The route recorded, if selection got that far, left in the slot for other readers.
    pub fn get(&self) -> Option<MatchedRoute> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }

    /// The slot of `request`: the one an outer layer put there, else a new one put there now.
    pub fn of<B>(request: &mut http::Request<B>) -> Self {
        if let Some(slot) = request.extensions().get::<MatchedRouteSlot>() {
            return slot.clone();
        }
        let slot = MatchedRouteSlot::new();
        request.extensions_mut().insert(slot.clone());
        slot
    }
}

/// Marks a response the proxy made itself (the answer to a [`RouteError`](super::RouteError):
/// a refusal, a rate limit, an unreachable backend), as opposed to one relayed from a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalAnswer;
