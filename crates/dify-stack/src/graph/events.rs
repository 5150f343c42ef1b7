//! Progress of a run: the [`Event`]s the executor emits, to a callback ([`EventSink`]) or as a
//! stream ([`EventStream`]).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{Node, NodeError, ResourceRef};

/// Progress of a run, for embedders and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A node started (apply or destroy).
    NodeStarted {
        /// Node.
        node: Node,
    },
    /// A resource was deleted (destroy).
    ResourceDeleted {
        /// Node.
        node: Node,
        /// What.
        resource: ResourceRef,
    },
    /// A node finished.
    NodeFinished {
        /// Node.
        node: Node,
        /// How long it took.
        elapsed: Duration,
    },
    /// A node failed.
    NodeFailed {
        /// Node.
        node: Node,
        /// Why.
        error: NodeError,
    },
    /// A node did not start because a node it depends on (or, in destroy, a node that depends
    /// on it) failed.
    NodeSkipped {
        /// Node.
        node: Node,
        /// The failed node.
        because: Node,
    },
    /// A node did not start because the run was cancelled.
    NodeCancelled {
        /// Node.
        node: Node,
    },
}

/// Receives events. Cheap to clone.
#[derive(Clone, Default)]
pub struct EventSink(Option<Arc<dyn Fn(Event) + Send + Sync>>);

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "EventSink(..)" } else { "EventSink(none)" })
    }
}

impl EventSink {
    /// A sink calling `f` for every event (from the executor's task; keep it quick).
    pub fn new(f: impl Fn(Event) + Send + Sync + 'static) -> Self {
        EventSink(Some(Arc::new(f)))
    }

    /// A sink sending into an unbounded channel.
    pub fn channel() -> (Self, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (EventSink::new(move |e| drop(tx.send(e))), rx)
    }

    /// A sink and the [`Stream`](futures::Stream) of its events, in the order they happened.
    /// The stream ends when every clone of the sink is dropped (the run is over and the
    /// [`Stack`](crate::Stack) holding it is gone).
    pub fn stream() -> (Self, EventStream) {
        let (sink, rx) = EventSink::channel();
        (sink, EventStream(rx))
    }

    /// Emits an event.
    pub fn emit(&self, e: Event) {
        if let Some(f) = &self.0 {
            f(e);
        }
    }
}

/// Progress events as a [`Stream`](futures::Stream): see [`EventSink::stream`] and
/// [`Stack::event_stream`](crate::Stack::event_stream).
#[derive(Debug)]
pub struct EventStream(tokio::sync::mpsc::UnboundedReceiver<Event>);

impl futures::Stream for EventStream {
    type Item = Event;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Event>> {
        self.0.poll_recv(cx)
    }
}
