# Fluent messages of the CRM example app (French): plurals and selectors.
open-opportunities =
    { $count ->
        [one] Une opportunité ouverte
       *[other] { $count } opportunités ouvertes
    }
record-saved = { $object } a été enregistré.
