"""Code shared by the model families under `models/`: config loading, the family registry, the tool front end."""
