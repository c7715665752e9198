--- cfiam.groups (placeholder until its issue lands)
return {}
