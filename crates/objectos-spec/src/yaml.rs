//! Located YAML/JSON trees: parse user files into a value tree that remembers the line of every node.
