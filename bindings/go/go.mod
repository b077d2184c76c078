module twistedpic.dev/twistedpic/bindings/go

go 1.19
