import VergeCLI

await VergeCommand.run()
