//! The fleet description: its schema, loading, and validation into a model planning can trust.

pub mod checked;
pub mod diag;
pub mod edit;
pub mod load;
pub mod locate;
pub mod model;
pub mod path;
pub mod schema;
pub mod syntax;
pub mod time;
pub mod validate;

pub use load::{Loaded, load};
pub use model::ValidFleet;
pub use schema::Fleet;
