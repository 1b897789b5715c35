ALTER TABLE "snapshots" ADD COLUMN "deleted_at" timestamp (6) with time zone;--> statement-breakpoint
ALTER TABLE "snapshots" ADD COLUMN "client_request_id" text;--> statement-breakpoint
ALTER TABLE "snapshots" ADD COLUMN "request_hash" text;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "deleted_at" timestamp (6) with time zone;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "client_request_id" text;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "request_hash" text;--> statement-breakpoint
CREATE UNIQUE INDEX "snapshots_project_client_request_idx" ON "snapshots" USING btree ("project_id","client_request_id") WHERE client_request_id is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "volumes_project_client_request_idx" ON "volumes" USING btree ("project_id","client_request_id") WHERE client_request_id is not null;