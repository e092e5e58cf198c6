from patronlink.cli import run

run()
