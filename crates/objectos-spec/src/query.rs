//! QueryAST and filters: the three filter forms normalised into one tree, sort, paging, expand, aggregations.
