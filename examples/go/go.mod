module twistedpic.dev/twistedpic/examples/go

go 1.19

require twistedpic.dev/twistedpic/bindings/go v0.0.0

replace twistedpic.dev/twistedpic/bindings/go => ../../bindings/go
