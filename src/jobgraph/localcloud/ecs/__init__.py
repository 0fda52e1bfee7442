"""ECS services, locally: desired-count processes of a task definition's command, stopped and replaced as ECS does; leaves out images, networking and Fargate capacity."""
