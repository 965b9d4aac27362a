//! Integration tests of the metrics plugin: a real kernel (data + http + metrics) on a SQLite
//! file, scraped over HTTP.

#[cfg(test)]
mod support;

#[cfg(test)]
mod scrape;

#[cfg(test)]
mod start;
