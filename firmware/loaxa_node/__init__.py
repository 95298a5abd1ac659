# loaxa speaker node firmware. Data flow, top down:
#   network -> stream -> jitter buffer -> decoder -> gain -> sink
#   control -> rules -> player
VERSION = "0.1.0"
