//! Integration tests of the i18n plugin: bundles and Fluent files loaded with the objects
//! (problems located), locale negotiation, the client's routes, translated metadata per
//! `Accept-Language` with its ETag and `Vary`, and reloads.

#[cfg(test)]
mod support;

#[cfg(test)]
mod loading;
#[cfg(test)]
mod routes;
