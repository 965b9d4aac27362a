# Fluent messages of the CRM example app (German): plurals and selectors.
open-opportunities =
    { $count ->
        [one] Eine offene Verkaufschance
       *[other] { $count } offene Verkaufschancen
    }
record-saved = { $object } wurde gespeichert.
