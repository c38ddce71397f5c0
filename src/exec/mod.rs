//! Running actions: the catalog of what may run (`catalog`), the process
//! runner with process groups, timeouts, output caps and cancellation
//! (`runner`), and the auth hook protocol shared by agent and dispatcher
//! (`hook`). Every carrier runs actions through this one module.

pub mod catalog;
pub mod hook;
pub mod runner;

pub use catalog::{Action, Catalog, CatalogError, BUILTINS};
pub use runner::{Job, Limits};
