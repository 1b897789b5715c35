ALTER TABLE "group_snapshots" ADD COLUMN "client_request_id" text;--> statement-breakpoint
ALTER TABLE "group_snapshots" ADD COLUMN "request_hash" text;--> statement-breakpoint
CREATE UNIQUE INDEX "group_snapshots_project_client_request_idx" ON "group_snapshots" USING btree ("project_id","client_request_id") WHERE client_request_id is not null;