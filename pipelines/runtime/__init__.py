"""What every stage shares at run time: starting or joining Ray, its guard, the actor plan."""
