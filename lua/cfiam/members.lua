--- cfiam.members (placeholder until its issue lands)
return {}
