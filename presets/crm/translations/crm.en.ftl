# Fluent messages of the CRM example app (English): plurals and selectors.
open-opportunities =
    { $count ->
        [one] One open opportunity
       *[other] { $count } open opportunities
    }
record-saved = { $object } was saved.
